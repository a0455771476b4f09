#!/usr/bin/env bash
# bench/gpu.sh — rxc on one GPU against PyTorch, in one run, within about 7 minutes.
#
# Prints a table:
#   rxc training throughput (images/s) of models/resnext50_32x4d.net at
#   224x224, batch 64 and 128, TF32 and bf16 (the file's AdamW, one random batch reused;
#   the time of K2 - K1 extra steps, so compilation and start-up cancel out);
#   rxc's device memory: the arena (everything rxc allocates) and the process
#   peak seen by nvidia-smi;
#   NVRTC cold and warm (cubin cache) compile time of that model;
#   PyTorch eager (channels_last, bf16 autocast) and torch.compile on the
#   same network (bench/gpu_torch.py: the seed's layout, no max-pool; not
#   torchvision's) with the same batch, where PyTorch with CUDA is installed;
#   ratios against the goals (>= 1.0x eager, >= 0.9x compile, memory <= 0.6x
#   PyTorch's);
#   then whole epochs from JPEG files on this machine's cores: synthetic
#   Imagenette-sized JPEGs (bench/gpu_torch.py jpegs), the seed's
#   augmentation, `rxc train` (cache jpeg: decoded every epoch, as the
#   DataLoader does) against PyTorch's DataLoader with one worker per core;
#   the last of BENCH_EPOCHS epochs counts;
#   on a machine with more than one GPU (and mpirun), a multi-GPU row: N
#   ranks (one per GPU, up to 8) of data-parallel `rxc step` with NCCL, each
#   rank at the first batch size and bf16 (global batch N x that), its
#   throughput and scaling efficiency against N x the one-GPU row.
#   RXC_PROFILE's table (the first batch size, bf16): every kernel and library
#   call of a training step timed with CUDA events against the cost model's
#   time, the 15 that lose the most time printed, the rest in
#   build/bench-gpu/profile.txt and profile.jsonl.
# Usage: bench/gpu.sh [RXC]      (needs a GPU; prints why not otherwise)
# BENCH_MODEL, BENCH_SIZE, BENCH_BATCHES, BENCH_STEPS ("K1 K2"),
# BENCH_EPOCH_IMAGES (3200), BENCH_EPOCHS (2) change the workload, e.g. for
# a dry run of this script on tests/cuda's fake GPU.
set -u
cd "$(dirname "$0")/.."
RXC="${1:-${RXC:-./rxc}}"
PYTHON="${PYTHON:-python3}"
command -v "$PYTHON" >/dev/null || PYTHON=/usr/bin/python3
export PYTHONPATH="$PWD/tests${PYTHONPATH:+:$PYTHONPATH}"   # tests/gpu/compare.py imports tests/harness.py
work=build/bench-gpu
mkdir -p "$work"
BUDGET=240          # seconds for the step rows; later items are skipped (and say so) past it
MODEL="${BENCH_MODEL:-models/resnext50_32x4d.net}"
SIZE="${BENCH_SIZE:-224}"
BATCHES="${BENCH_BATCHES:-64 128}"
read -r K1 K2 <<<"${BENCH_STEPS:-5 25}"   # rxc steps: throughput from the difference
TORCH_STEPS=20

[ -x "$RXC" ] || { echo "bench/gpu.sh: $RXC is not built (make)"; exit 1; }
cc -std=c11 -O1 -D_GNU_SOURCE -Icompiler -Iruntime -Itarget/cpu -Itarget/cuda -Icli -I. -o "$work/probe" tests/gpu/probe.c target/cuda/cuda_api.c compiler/error.c -ldl || exit 1
if ! dev=$("$work/probe"); then echo "bench/gpu.sh: no GPU: $dev"; exit 1; fi
echo "device: ${dev#gpu }   date: $(date -u +%Y-%m-%dT%H:%MZ)   rxc: $("$RXC" --version | head -n 1)"

left() { [ "$SECONDS" -lt "$BUDGET" ]; }
peak_smi() { # command... : runs it while sampling nvidia-smi; prints the peak MiB on fd 3
  local f="$work/smi.txt"; : >"$f"
  if command -v nvidia-smi >/dev/null; then
    (while :; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0 >>"$f" 2>/dev/null; sleep 0.2; done) &
    local sampler=$!
  fi
  "$@"; local rc=$?
  [ -n "${sampler:-}" ] && kill "$sampler" 2>/dev/null && wait "$sampler" 2>/dev/null
  echo "$(sort -n "$f" | tail -1)" >&3
  return $rc
}

# NVRTC: cold (recompile, rewrite the cache) and warm (cache hit)
nvrtc_cold="-" nvrtc_warm="-"
big=${BATCHES##* }
if "$RXC" compile "$MODEL" --set "input=3x${SIZE}x${SIZE}" --batch "$big" --cold >"$work/compile.log" 2>&1; then
  nvrtc_cold=$(sed -n 's/^compile time: cold \([0-9.]*\) s.*/\1/p' "$work/compile.log")
  nvrtc_warm=$(sed -n 's/.*warm \([0-9.]*\) s.*/\1/p' "$work/compile.log")
else
  echo "rxc compile failed: $(tail -3 "$work/compile.log")"
fi

declare -A ips mem arena
notes=()
for b in $BATCHES; do
  "$PYTHON" tests/gpu/compare.py batch "$work/batch$b.safetensors" "$b" 3 "$SIZE" "$SIZE" 10 1 || exit 1
  for prec in tf32 bf16; do
    key="$b/$prec"; ips[$key]="-"; mem[$key]="-"; arena[$key]="-"
    if ! left; then ips[$key]="skipped (time budget)"; continue; fi
    args=("$MODEL" --batch "$work/batch$b.safetensors" --device cuda --set classes=10 --set "input=3x${SIZE}x${SIZE}")
    env=(RXC_VERBOSE=1)
    args+=(--set "precision=$prec")
    t0=$(date +%s.%N)
    if ! env "${env[@]}" "$RXC" step "${args[@]}" --steps $K1 --out "$work/o1.safetensors" >"$work/run1.log" 2>&1; then
      ips[$key]="n/a"; notes+=("rxc $key: $(grep -m1 -i 'error\|not\|fail' "$work/run1.log" | cut -c1-150)"); continue
    fi
    t1=$(date +%s.%N)
    peak=$(peak_smi env "${env[@]}" "$RXC" step "${args[@]}" --steps $K2 --out "$work/o2.safetensors" \
             3>&1 >"$work/run2.log" 2>&1) || { ips[$key]="n/a"; notes+=("rxc $key: $(tail -1 "$work/run2.log")"); continue; }
    t2=$(date +%s.%N)
    ips[$key]=$(awk -v b="$b" -v k=$((K2 - K1)) -v a="$t0" -v m="$t1" -v e="$t2" \
                'BEGIN { d = (e - m) - (m - a); printf "%.1f", (d > 0 ? b * k / d : 0) }')
    mem[$key]=${peak:-"-"}
    arena[$key]=$(sed -n 's/^rxc: cuda arena \([0-9.]*\) MiB.*/\1/p' "$work/run2.log" | head -1)
  done
done

# Several GPUs: one rank each, gradients over NCCL (the global batch grows with N).
gpus=$("$work/probe" count)
multi_row=""
b1=${BATCHES%% *}
if [ "${gpus:-1}" -gt 1 ] && command -v mpirun >/dev/null; then
  n=$((gpus > 8 ? 8 : gpus))
  if left; then
    "$PYTHON" tests/gpu/compare.py batch "$work/batch_multi.safetensors" $((b1 * n)) 3 "$SIZE" "$SIZE" 10 1 || exit 1
    margs=("$MODEL" --batch "$work/batch_multi.safetensors" --device cuda --set classes=10 --set "input=3x${SIZE}x${SIZE}"
           --set precision=bf16)
    mpi=(mpirun --allow-run-as-root -np "$n")
    t0=$(date +%s.%N)
    if "${mpi[@]}" "$RXC" step "${margs[@]}" --steps $K1 --out "$work/m1.safetensors" >"$work/multi1.log" 2>&1 &&
       t1=$(date +%s.%N) &&
       "${mpi[@]}" "$RXC" step "${margs[@]}" --steps $K2 --out "$work/m2.safetensors" >"$work/multi2.log" 2>&1; then
      t2=$(date +%s.%N)
      mips=$(awk -v b=$((b1 * n)) -v k=$((K2 - K1)) -v a="$t0" -v m="$t1" -v e="$t2" \
               'BEGIN { d = (e - m) - (m - a); printf "%.1f", (d > 0 ? b * k / d : 0) }')
      eff=$(awk -v m="$mips" -v one="${ips[$b1/bf16]:-0}" -v n="$n" 'BEGIN { if (one + 0 > 0) printf "%.0f%%", 100 * m / (n * one); else printf "-" }')
      multi_row="$n GPUs (NCCL, batch $b1 per GPU, bf16): ${mips} img/s, scaling efficiency ${eff} of $n x the one-GPU row (goal >= 90% at 8)"
    else
      multi_row="$n GPUs: n/a"; notes+=("rxc multi-GPU: $(tail -c 300 "$work/multi1.log" "$work/multi2.log" 2>/dev/null | tr '\n' ' ')")
    fi
  else multi_row="$n GPUs: skipped (time budget)"; fi
fi
# RXC_PROFILE: every step of 3 training steps (after a first) timed with CUDA events, direct launches,
# against the cost model; the whole table in $work/profile.txt, JSON lines in $work/profile.jsonl
profile_b=${BATCHES%% *}
profile_note="skipped (time budget)"
if left; then
  rm -f "$work/profile.jsonl"
  if RXC_PROFILE=1 RXC_PROFILE_STEPS=3 RXC_PROFILE_JSON="$work/profile.jsonl" "$RXC" step "$MODEL" \
       --batch "$work/batch$profile_b.safetensors" --device cuda --set classes=10 --set "input=3x${SIZE}x${SIZE}" \
       --set precision=bf16 --steps 4 --out "$work/o_profile.safetensors" >"$work/profile.txt" 2>&1; then
    profile_note=$(grep '^totals: ' "$work/profile.txt" | head -1)
  else
    profile_note="n/a: $(grep -v '^ ' "$work/profile.txt" | tail -1 | cut -c1-150)"
  fi
fi

declare -A tips tmem
for mode in eager compile; do
  for b in $BATCHES; do
    key="$b/$mode"
    if ! left; then tips[$key]="skipped (time budget)"; continue; fi
    out=$(timeout $((BUDGET - SECONDS + 10)) "$PYTHON" bench/gpu_torch.py step "$mode" "$b" "$TORCH_STEPS" "$SIZE" 2>"$work/torch.log" | tail -1)
    set -- $out
    if [ "${4:-}" = "n/a" ] || [ -z "$out" ]; then
      tips[$key]="n/a"; tmem[$key]="-"; notes+=("torch $key: ${out#torch $mode $b n/a }$(tail -1 "$work/torch.log" | cut -c1-150)")
    else tips[$key]=$4; tmem[$key]=$5; fi
  done
done

# Whole epochs from JPEG files: rxc train and PyTorch's DataLoader on the same files.
EPOCH_IMAGES="${BENCH_EPOCH_IMAGES:-3200}"
EPOCHS="${BENCH_EPOCHS:-2}"
EPOCH_BUDGET=$((BUDGET + 150))   # the epoch rows have their own share of the time
epoch_b=${BATCHES%% *}
rxc_epoch="-" torch_epoch="-"
jpegs="$work/jpegs$EPOCH_IMAGES"
if [ "$SECONDS" -lt "$EPOCH_BUDGET" ]; then
  [ -d "$jpegs/val" ] || "$PYTHON" bench/gpu_torch.py jpegs "$jpegs" "$EPOCH_IMAGES" || notes+=("could not write the JPEGs")
  rm -rf "$work/epoch-run"
  if timeout $((EPOCH_BUDGET - SECONDS + 30)) "$RXC" train "$MODEL" --device cuda --epochs "$EPOCHS" --run-dir "$work/epoch-run" \
       --set "root=$jpegs" --set cache=jpeg --set "batch=$epoch_b" --set classes=10 >"$work/epoch-rxc.log" 2>&1; then
    rxc_epoch=$(awk -F, 'NR > 1 { r = $8 } END { printf "%.1f", r }' "$work/epoch-run/metrics.csv")
  else
    rxc_epoch="n/a"; notes+=("rxc epochs: $(tail -1 "$work/epoch-rxc.log" | cut -c1-150)")
  fi
fi
if [ "$SECONDS" -lt "$EPOCH_BUDGET" ]; then
  out=$(timeout $((EPOCH_BUDGET - SECONDS + 30)) "$PYTHON" bench/gpu_torch.py epoch "$jpegs" "$epoch_b" "$(nproc)" "$EPOCHS" \
        2>"$work/torch-epoch.log" | tail -1)
  set -- $out
  if [ "${4:-}" = "n/a" ] || [ -z "$out" ]; then
    torch_epoch="n/a"; notes+=("torch epochs: ${out}$(tail -1 "$work/torch-epoch.log" | cut -c1-150)")
  else torch_epoch=$4; fi
else
  notes+=("epoch rows skipped (time budget)")
fi

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2fx", a / b; else printf "-" }'; }
echo
printf "%-6s %-6s %12s %10s %10s %12s %12s %12s %9s %9s\n" batch prec "rxc img/s" "arena MiB" "peak MiB" \
  "eager img/s" "compile img/s" "torch MiB" "vs eager" "vs comp."
for b in $BATCHES; do
  for prec in tf32 bf16; do
    k="$b/$prec"
    printf "%-6s %-6s %12s %10s %10s %12s %12s %12s %9s %9s\n" "$b" "$prec" "${ips[$k]}" "${arena[$k]:--}" \
      "${mem[$k]}" "${tips[$b/eager]:--}" "${tips[$b/compile]:--}" "${tmem[$b/eager]:--}" \
      "$(ratio "${ips[$k]}" "${tips[$b/eager]:-}")" "$(ratio "${ips[$k]}" "${tips[$b/compile]:-}")"
  done
done
[ -n "$multi_row" ] && echo "multi-GPU: $multi_row"
echo
echo "epochs from JPEG ($EPOCH_IMAGES synthetic Imagenette-sized files, seed augmentation, batch $epoch_b, $(nproc) cores):"
echo "  rxc train ${rxc_epoch} img/s, PyTorch DataLoader ($(nproc) workers) + eager bf16 ${torch_epoch} img/s: $(ratio "$rxc_epoch" "$torch_epoch")"
echo "NVRTC ($(basename "$MODEL" .net), batch $big): cold ${nvrtc_cold} s, warm ${nvrtc_warm} s"
echo "memory goal: rxc peak <= 0.6x PyTorch's (peak MiB is the whole process as nvidia-smi sees it;"
echo "torch MiB is torch.cuda.max_memory_reserved, eager bf16)"
echo "PyTorch runs are the seed's ResNeXt-50 32x4d (bench/gpu_torch.py), channels_last, bf16 autocast, AdamW and label smoothing 0.1 as the .net file."
echo
echo "RXC_PROFILE (batch $profile_b, bf16, rxc step's program; measured with CUDA events, direct launches; model: the cost model):"
if [ -s "$work/profile.jsonl" ]; then
  grep -m4 '^rxc profile:\|^  timed runs\|^  model:\|^  note:' "$work/profile.txt" | sed 's/^/  /'
  echo "  ${profile_note}"
  echo "  the 15 entries that lose the most time (all in $work/profile.txt, JSON lines in $work/profile.jsonl):"
  grep -A15 '^phase    step' "$work/profile.txt" | sed 's/^/  /'
  grep '^  forward  measured\|^  backward measured\|^  update   measured' "$work/profile.txt" | sed 's/^/  /'
else
  echo "  ${profile_note}"
fi
for n in "${notes[@]}"; do echo "note: $n"; done
echo "total time: ${SECONDS} s"

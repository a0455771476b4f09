#!/usr/bin/env bash
# tests/dist — data-parallel training over MPI (runtime/distributed.c), two
# ranks on this machine: `mpirun --oversubscribe -np 2`, one thread each.
#   rxc step      2 ranks x 4 samples equal 1 rank x 8 after 3 AdamW steps on
#                 a net without BatchNorm (parameters, gathered logits, losses;
#                 1 rank is itself checked against torch.optim by tests/train),
#                 a batch that does not divide, --distributed off under mpirun;
#                 with BatchNorm (per-rank statistics), the same 3 AdamW steps
#                 as PyTorch DistributedDataParallel on gloo, 2 processes, the
#                 same slices (ddp_ref.py: parameters, rank 0's BN buffers,
#                 logits, losses within 1e-4 relative per tensor); with sync_bn
#                 true, 2 ranks equal 1 rank on the whole batch (both against
#                 PyTorch's float64 run, the same tolerance)
#   rxc train     tiny_resnext for 2 epochs on the demo digits: the same
#                 validation accuracy as 1 rank within 1 point, rank 0 alone
#                 prints, the checkpoint has the single-process format and
#                 resumes on 1 rank; a global batch that does not divide
#   kill -9       of one rank during training ends the job within 60 s, non-zero,
#                 naming the rank (mpirun's own watch), last.safetensors intact
#   SIGSTOP       of one rank (it hangs; mpirun sees nothing): the other rank's
#                 watchdog (distributed.c) ends it after RXC_DIST_TIMEOUT, naming
#                 the silent rank, and mpirun the job; last.safetensors intact
#   launch        --distributed on without a launcher, and a launch whose
#                 libmpi cannot be loaded, are clear errors (exit 2)
#   GPU + NCCL    the GPU executor on the fake GPU (tests/cuda/fake_gpu.cc)
#                 with the fake NCCL (fake_nccl.cc: every all-reduce matched
#                 across the ranks, ordered on the compute stream, summed):
#                 2 ranks equal 1 rank at the global batch after 3 AdamW
#                 steps, with several gradient buckets inside the backward
#                 graph, and with gradient accumulation (accum 2: only the
#                 last micro-batch's backward reduces, its own graph); sync_bn on the device against float64 PyTorch; an
#                 NCCL older than 2.9 runs the collectives outside graphs with
#                 the same result; a missing libnccl is a clear error
# Open MPI comes from `make setup` (openmpi-bin, libopenmpi-dev).
set -u
cd "$(dirname "$0")/../.."
. tests/harness.sh
cases 19
PYTHON="${PYTHON:-/usr/bin/python3}"
RXC="${RXC:-$PWD/rxc}"
export RXC_CACHE_DIR="${RXC_CACHE_DIR:-$PWD/build/test-cache}" OMP_NUM_THREADS=1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
ALL=(step_2ranks_equal_1rank step_batch_not_divisible step_distributed_off step_ddp_per_rank_bn step_sync_bn_equals_1rank
     train_accuracy_2ranks
     train_rank0_prints train_checkpoint_format train_resume_on_1rank train_batch_not_divisible
     rank_killed_ends_job rank_stopped_ends_job launch_on_without_launcher launch_without_libmpi
     gpu_nccl_2ranks_equal_1rank gpu_nccl_sync_bn_equals_1rank gpu_nccl_old_version_outside_graph
     gpu_nccl_missing_is_clear_error gpu_nccl_accumulation)
if ! command -v mpirun > /dev/null; then
  skip_each "no mpirun (make setup installs openmpi-bin and libopenmpi-dev)" "${ALL[@]}"
  exit 0
fi
MPI=(mpirun --allow-run-as-root --oversubscribe -np 2 -x OMP_NUM_THREADS -x RXC_CACHE_DIR)

# compare A B RTOL ATOL: the same tensors, equal within the tolerances; prints what differs.
compare() {
  "$PYTHON" - "$@" <<'PY'
import sys
sys.path.insert(0, "tests/train")
import numpy as np, st
a, _ = st.read(sys.argv[1]); b, _ = st.read(sys.argv[2])
rtol, atol = float(sys.argv[3]), float(sys.argv[4])
bad = [] if sorted(a) == sorted(b) else [f"names differ: {sorted(set(a) ^ set(b))}"]
for k in sorted(set(a) & set(b)):
    x, y = a[k].astype(np.float64), b[k].astype(np.float64)
    if x.shape != y.shape: bad.append(f"{k}: shape {x.shape} vs {y.shape}"); continue
    d = np.abs(x - y) - (atol + rtol * np.abs(x))
    if (d > 0).any(): bad.append(f"{k}: max |diff| {np.abs(x - y).max():.3g}")
print("; ".join(bad[:6]))
PY
}

# ---- rxc step ------------------------------------------------------------------------
cat > "$T/nobn.net" <<'NET'
network nobn {
    input 3x8x8
    classes 5
    x = relu(conv(input, 8, 3))
    x = relu(conv(x, 16, 3, stride=2))
    return fc: linear(flatten(global_avgpool(x)), classes)
}
train {
    epochs 3
    batch 8
    seed 3
    optimizer adamw(lr=0.01, weight_decay=0.1)
    schedule constant
    loss cross_entropy(label_smoothing=0)
}
NET
"$PYTHON" - "$T" <<'PY'
import sys
sys.path.insert(0, "tests/train")
import numpy as np, st
r = np.random.default_rng(1)
x, y = r.standard_normal((8, 3, 8, 8)).astype(np.float32), r.integers(0, 5, 8).astype(np.int64)
st.write(sys.argv[1] + "/b8.safetensors", {"x": x, "y": y})
st.write(sys.argv[1] + "/b7.safetensors", {"x": x[:7], "y": y[:7]})
PY
"$RXC" step "$T/nobn.net" --batch "$T/b8.safetensors" --steps 3 --out "$T/o1.safetensors" > "$T/s1.log" 2>&1
"${MPI[@]}" "$RXC" step "$T/nobn.net" --batch "$T/b8.safetensors" --steps 3 --out "$T/o2.safetensors" > "$T/s2.log" 2>&1
rc=$?
# Only the order of the gradient sums differs (two half-batch sums, then the mean).
if [ $rc -ne 0 ] || [ ! -f "$T/o1.safetensors" ] || [ ! -f "$T/o2.safetensors" ]; then
  fail step_2ranks_equal_1rank "exit $rc: $(tail -c 400 "$T/s2.log" "$T/s1.log")"
else
  bad=$(compare "$T/o1.safetensors" "$T/o2.safetensors" 1e-5 1e-6)
  [ -z "$bad" ] && pass step_2ranks_equal_1rank "parameters, logits and losses within 1e-5 relative" \
                || fail step_2ranks_equal_1rank "$bad"
fi

"${MPI[@]}" "$RXC" step "$T/nobn.net" --batch "$T/b7.safetensors" --out "$T/o7.safetensors" > "$T/s7.log" 2>&1
rc=$?
if [ $rc -eq 2 ] && grep -q "does not divide among 2 ranks" "$T/s7.log"; then pass step_batch_not_divisible
else fail step_batch_not_divisible "exit $rc: $(tail -c 300 "$T/s7.log")"; fi

# --distributed off: each process computes the whole batch alone, as one process would.
"${MPI[@]}" "$RXC" step "$T/nobn.net" --batch "$T/b8.safetensors" --steps 3 --distributed off \
  --out "$T/off.safetensors" > "$T/off.log" 2>&1
rc=$?
if [ $rc -eq 0 ] && cmp -s "$T/o1.safetensors" "$T/off.safetensors"; then pass step_distributed_off
else fail step_distributed_off "exit $rc, output $(cmp "$T/o1.safetensors" "$T/off.safetensors" 2>&1): $(tail -c 300 "$T/off.log")"; fi

# Per-rank BatchNorm against PyTorch DDP (gloo, 2 processes, rendezvous through a file,
# loopback only); ddp_ref.py states the tolerance and checks that whole-batch BN would fail it.
mkdir "$T/ddp"
if ! timeout 300 "$PYTHON" tests/dist/ddp_ref.py prepare "$T/ddp" > "$T/ddp.log" 2>&1; then
  fail step_ddp_per_rank_bn "PyTorch DDP run failed: $(tail -c 400 "$T/ddp.log")"
elif ! "${MPI[@]}" "$RXC" step "$T/ddp/ddp_bn.net" --batch "$T/ddp/b.safetensors" --init "$T/ddp/w.safetensors" \
       --steps 3 --out "$T/ddp/o.safetensors" > "$T/ddp.log" 2>&1; then
  fail step_ddp_per_rank_bn "rxc step on 2 ranks failed: $(tail -c 400 "$T/ddp.log")"
else
  res=$("$PYTHON" tests/dist/ddp_ref.py check "$T/ddp" "$T/ddp/o.safetensors" 2>&1)
  case "$res" in
    "ok "*) pass step_ddp_per_rank_bn "${res#ok }" ;;
    *) fail step_ddp_per_rank_bn "$res" ;;
  esac
fi

# sync_bn: 2 ranks x 4 samples equal 1 rank x 8 (the same net, weights and batch as above), both
# against PyTorch's one-process run in float64 (ddp_ref.py check_sync).
STEP_DDP=("$T/ddp/ddp_bn.net" --batch "$T/ddp/b.safetensors" --init "$T/ddp/w.safetensors" --steps 3)
if [ ! -f "$T/ddp/full64.safetensors" ]; then
  fail step_sync_bn_equals_1rank "no float64 reference: $(tail -c 300 "$T/ddp.log")"
elif ! "$RXC" step "${STEP_DDP[@]}" --out "$T/ddp/one.safetensors" > "$T/sync.log" 2>&1 ||
     ! "${MPI[@]}" "$RXC" step "${STEP_DDP[@]}" --set sync_bn=true --out "$T/ddp/sync.safetensors" >> "$T/sync.log" 2>&1; then
  fail step_sync_bn_equals_1rank "rxc step failed: $(tail -c 400 "$T/sync.log")"
else
  res=$("$PYTHON" tests/dist/ddp_ref.py check_sync "$T/ddp" "$T/ddp/one.safetensors" "$T/ddp/sync.safetensors" 2>&1)
  case "$res" in
    "ok "*) pass step_sync_bn_equals_1rank "${res#ok }" ;;
    *) fail step_sync_bn_equals_1rank "$res" ;;
  esac
fi

# ---- the GPU executor with NCCL, on the fake GPU and the fake NCCL ----------------------
. tests/cuda/fake_gpu.sh
GPU_CASES=(gpu_nccl_2ranks_equal_1rank gpu_nccl_sync_bn_equals_1rank gpu_nccl_old_version_outside_graph
           gpu_nccl_missing_is_clear_error gpu_nccl_accumulation)
fake="$PWD/build/test-dist/fakegpu"
if ! build_fake_gpu "$fake" || ! build_fake_nccl "$fake"; then
  for c in "${GPU_CASES[@]}"; do fail "$c" "the fake GPU or NCCL does not build: $(head -c 400 "$fake"/build*.log)"; done
else
  FAKE_ENV=(LD_LIBRARY_PATH="$fake" CUDA_HOME="$fake/cuda" RXC_FAKE_GPU_EMU_INCLUDE="$PWD/tests/emu" RXC_FAKE_GPU_DIR="$fake"
            RXC_FAKE_GPU_VERBOSE=1 RXC_FAKE_NCCL_TIMEOUT=20)
  GMPI=("${MPI[@]}")
  for v in "${FAKE_ENV[@]}"; do GMPI+=(-x "$v"); done
  GSTEP=("$T/nobn.net" --batch "$T/b8.safetensors" --steps 3 --device cuda --set precision=fp32)
  env "${FAKE_ENV[@]}" "$RXC" step "${GSTEP[@]}" --out "$T/g1.safetensors" > "$T/g1.log" 2>&1
  rc1=$?
  # buckets of 500 bytes: several all-reduces between backward's steps; two fake GPUs, one per rank
  "${GMPI[@]}" -x RXC_BUCKET_MB=0.0005 -x RXC_FAKE_GPU_DEVICES=2 -x RXC_VERBOSE=1 "$RXC" step "${GSTEP[@]}" \
    --out "$T/g2.safetensors" > "$T/g2.log" 2>&1
  rc2=$?
  gpus=$(grep -c "rank 0 of 2 joined NCCL on cuda:0\|rank 1 of 2 joined NCCL on cuda:1" "$T/g2.log")
  nb=$(sed -n 's/.*gradients summed on the GPU in \([0-9]*\) buckets.*inside the CUDA graph.*/\1/p' "$T/g2.log")
  hz=$(grep -c ' 0 hazards' "$T/g2.log")
  if [ $rc1 -ne 0 ] || [ $rc2 -ne 0 ]; then
    fail gpu_nccl_2ranks_equal_1rank "exit $rc1/$rc2: $(tail -c 600 "$T/g1.log" "$T/g2.log" | tr '\n' ' ')"
  else
    bad=$(compare "$T/g1.safetensors" "$T/g2.safetensors" 1e-5 1e-6)
    if [ -n "$bad" ]; then fail gpu_nccl_2ranks_equal_1rank "$bad"
    elif [ "${nb:-0}" -lt 2 ] || [ "$hz" -ne 2 ] || [ "$gpus" -ne 2 ]; then
      fail gpu_nccl_2ranks_equal_1rank "expected several buckets inside the graph, no hazards, rank r on cuda:r: $(grep 'NCCL\|fake' "$T/g2.log" | head -5 | tr '\n' ' ')"
    else pass gpu_nccl_2ranks_equal_1rank "$nb buckets per backward inside the CUDA graph, rank r on cuda:r; within 1e-5 relative"; fi
  fi

  if [ ! -f "$T/ddp/full64.safetensors" ]; then
    fail gpu_nccl_sync_bn_equals_1rank "no float64 reference: $(tail -c 300 "$T/ddp.log")"
  elif ! env "${FAKE_ENV[@]}" "$RXC" step "${STEP_DDP[@]}" --device cuda --set precision=fp32 \
         --out "$T/ddp/gone.safetensors" > "$T/gsync.log" 2>&1 ||
       ! "${GMPI[@]}" "$RXC" step "${STEP_DDP[@]}" --device cuda --set precision=fp32 --set sync_bn=true \
         --out "$T/ddp/gsync.safetensors" >> "$T/gsync.log" 2>&1; then
    fail gpu_nccl_sync_bn_equals_1rank "rxc step failed: $(tail -c 600 "$T/gsync.log" | tr '\n' ' ')"
  else
    res=$("$PYTHON" tests/dist/ddp_ref.py check_sync "$T/ddp" "$T/ddp/gone.safetensors" "$T/ddp/gsync.safetensors" 2>&1)
    case "$res" in
      "ok "*) pass gpu_nccl_sync_bn_equals_1rank "${res#ok }" ;;
      *) fail gpu_nccl_sync_bn_equals_1rank "$res" ;;
    esac
  fi

  # accum 2: 2 micro-batches per step; the first backward of each step must not reduce
  env "${FAKE_ENV[@]}" "$RXC" step "${GSTEP[@]}" --set accum=2 --out "$T/ga1.safetensors" > "$T/ga1.log" 2>&1 &&
    "${GMPI[@]}" "$RXC" step "${GSTEP[@]}" --set accum=2 --out "$T/ga2.safetensors" > "$T/ga2.log" 2>&1
  rc=$?
  if [ $rc -ne 0 ]; then fail gpu_nccl_accumulation "exit $rc: $(tail -c 500 "$T/ga1.log" "$T/ga2.log" | tr '\n' ' ')"
  else
    bad=$(compare "$T/ga1.safetensors" "$T/ga2.safetensors" 1e-5 1e-6)
    [ -z "$bad" ] && pass gpu_nccl_accumulation "accum 2, 3 steps: 2 ranks equal 1 rank within 1e-5 relative" \
                  || fail gpu_nccl_accumulation "$bad"
  fi

  "${GMPI[@]}" -x RXC_FAKE_NCCL_VERSION=20803 "$RXC" step "${GSTEP[@]}" --out "$T/g3.safetensors" > "$T/g3.log" 2>&1
  rc=$?
  if [ $rc -eq 0 ] && grep -q "outside CUDA graphs" "$T/g3.log" && [ -z "$(compare "$T/g2.safetensors" "$T/g3.safetensors" 0 0)" ]; then
    pass gpu_nccl_old_version_outside_graph "NCCL 2.8: no graph around the all-reduces, the same parameters"
  else fail gpu_nccl_old_version_outside_graph "exit $rc: $(tail -c 500 "$T/g3.log" | tr '\n' ' ')"; fi

  "${GMPI[@]}" -x RXC_NCCL_LIB=/nonexistent/libnccl.so.2 "$RXC" step "${GSTEP[@]}" --out "$T/g4.safetensors" > "$T/g4.log" 2>&1
  rc=$?
  if [ $rc -ne 0 ] && grep -q "NCCL (libnccl.so.2) not found; tried /nonexistent/libnccl.so.2" "$T/g4.log"; then
    pass gpu_nccl_missing_is_clear_error
  else fail gpu_nccl_missing_is_clear_error "exit $rc: $(tail -c 500 "$T/g4.log" | tr '\n' ' ')"; fi
fi

# ---- rxc train -----------------------------------------------------------------------
TRAIN=(train_accuracy_2ranks train_rank0_prints train_checkpoint_format train_resume_on_1rank train_batch_not_divisible
       rank_killed_ends_job rank_stopped_ends_job)
if [ ! -f "$RXC_TEST_DATA/digits.csv.gz" ] ||
   ! "$RXC" demo --out "$T/digits" --csv "$RXC_TEST_DATA/digits.csv.gz" > "$T/demo.log" 2>&1; then
  skip_each "no digits.csv.gz in $RXC_TEST_DATA (make setup)" "${TRAIN[@]}"
else
  NET=models/tiny_resnext.net
  SET=(--set root="$T/digits" --set workers=1 --epochs 2)
  "$RXC" train $NET "${SET[@]}" --run-dir "$T/r1" > "$T/r1.out" 2> "$T/r1.err"
  rc1=$?
  "${MPI[@]}" "$RXC" train $NET "${SET[@]}" --run-dir "$T/r2" > "$T/r2.out" 2> "$T/r2.err"
  rc2=$?
  acc() { sed -n 's/^Epoch: 2\/2 .*Val Loss: [0-9.]* Accuracy: \([0-9.]*\)$/\1/p' "$1"; }
  a1=$(acc "$T/r1.out"); a2=$(acc "$T/r2.out")
  if [ $rc1 -ne 0 ] || [ $rc2 -ne 0 ] || [ -z "$a1" ] || [ -z "$a2" ]; then
    fail train_accuracy_2ranks "exit $rc1/$rc2: $(tail -c 400 "$T/r2.err")"
  elif "$PYTHON" -c "import sys; sys.exit(abs($a1 - $a2) > 0.01)"; then
    pass train_accuracy_2ranks "validation accuracy $a2 on 2 ranks, $a1 on 1 rank"
  else
    fail train_accuracy_2ranks "validation accuracy $a2 on 2 ranks, $a1 on 1 rank: more than 1 point apart"
  fi
  n_epoch=$(grep -c '^Epoch: ' "$T/r2.out"); n_param=$(grep -c '^#Parameter' "$T/r2.out")
  n_data=$(grep -c '^data: ' "$T/r2.err")
  [ "$n_epoch" = 2 ] && [ "$n_param" = 1 ] && [ "$n_data" = 2 ] && pass train_rank0_prints \
    || fail train_rank0_prints "$n_epoch epoch lines, $n_param parameter lines, $n_data data lines (want 2, 1, 2)"
  bad=$(compare "$T/r1/last.safetensors" "$T/r2/last.safetensors" 1e9 1e9 2>&1)
  [ -f "$T/r2/last.safetensors" ] && [ -z "$bad" ] && pass train_checkpoint_format "the tensors of a 1-rank checkpoint" \
    || fail train_checkpoint_format "${bad:-no last.safetensors}"
  # Stopped inside epoch 2 on 2 ranks, finished on 1.
  "${MPI[@]}" "$RXC" train $NET "${SET[@]}" --run-dir "$T/r3" --max-steps 30 > "$T/r3.out" 2> "$T/r3.err"
  rc=$?
  "$RXC" train $NET "${SET[@]}" --run-dir "$T/r3" --resume "$T/r3/last.safetensors" > "$T/r3b.out" 2> "$T/r3b.err"
  rcb=$?
  a3=$(acc "$T/r3b.out")
  if [ $rc -eq 0 ] && [ $rcb -eq 0 ] && grep -q "resuming .* at epoch 2, step 30" "$T/r3b.err" &&
     "$PYTHON" -c "import sys; sys.exit(abs(${a3:-0} - $a2) > 0.01)"; then
    pass train_resume_on_1rank "validation accuracy $a3"
  else
    fail train_resume_on_1rank "exit $rc/$rcb, accuracy '$a3': $(tail -c 300 "$T/r3b.err")"
  fi
  "${MPI[@]}" "$RXC" train $NET "${SET[@]}" --set batch=63 --run-dir "$T/r4" > "$T/r4.out" 2> "$T/r4.err"
  rc=$?
  if [ $rc -eq 2 ] && grep -q "does not divide among 2 ranks" "$T/r4.err"; then pass train_batch_not_divisible
  else fail train_batch_not_divisible "exit $rc: $(tail -c 300 "$T/r4.err")"; fi

  # kill -9 of rank 1 after the first epoch: the job ends, and rank 0's checkpoint still loads.
  "${MPI[@]}" "$RXC" train $NET --set root="$T/digits" --set workers=1 --epochs 200 --run-dir "$T/r5" \
    > "$T/r5.out" 2>&1 &
  mp=$!
  for _ in $(seq 120); do grep -qs '^Epoch: 1/' "$T/r5.out" && break; sleep 0.5; done
  victim=$(pgrep -P $mp | sort -n | tail -1)
  [ -n "$victim" ] && kill -9 "$victim"
  t0=$(date +%s)
  for _ in $(seq 120); do kill -0 $mp 2> /dev/null || break; sleep 0.5; done
  if kill -0 $mp 2> /dev/null; then
    kill $mp; wait $mp
    fail rank_killed_ends_job "mpirun still running 60 s after kill -9 of rank 1"
  else
    wait $mp; rc=$?
    secs=$(( $(date +%s) - t0 ))
    if [ -n "$victim" ] && [ $rc -ne 0 ] && grep -q "rank 1 .*signal 9" "$T/r5.out" &&
       "$RXC" eval $NET --set root="$T/digits" --weights "$T/r5/last.safetensors" > "$T/r5e.out" 2>&1; then
      pass rank_killed_ends_job "exit $rc after ${secs} s; last.safetensors evaluates"
    else
      fail rank_killed_ends_job "victim '$victim', exit $rc: $(tail -c 300 "$T/r5.out") $(tail -c 200 "$T/r5e.out")"
    fi
  fi

  # SIGSTOP of rank 1 (a rank that hangs; mpirun sees nothing wrong): rank 0's watchdog ends it.
  "${MPI[@]}" -x RXC_DIST_TIMEOUT=10 "$RXC" train $NET --set root="$T/digits" --set workers=1 --epochs 200 \
    --run-dir "$T/r6" > "$T/r6.out" 2>&1 &
  mp=$!
  for _ in $(seq 120); do grep -qs '^Epoch: 1/' "$T/r6.out" && break; sleep 0.5; done
  victim=$(pgrep -P $mp | sort -n | tail -1)
  [ -n "$victim" ] && kill -STOP "$victim"
  t0=$(date +%s)
  for _ in $(seq 120); do kill -0 $mp 2> /dev/null || break; sleep 0.5; done
  if kill -0 $mp 2> /dev/null; then
    kill $mp; [ -n "$victim" ] && kill -9 "$victim"; wait $mp
    fail rank_stopped_ends_job "mpirun still running 60 s after SIGSTOP of rank 1"
  else
    wait $mp; rc=$?
    secs=$(( $(date +%s) - t0 ))
    [ -n "$victim" ] && kill -9 "$victim" 2> /dev/null
    if [ -n "$victim" ] && [ $rc -ne 0 ] && grep -q "rank 0 of 2: waited 1[0-9] s .* rank 1 has died or stopped" "$T/r6.out" &&
       "$RXC" eval $NET --set root="$T/digits" --weights "$T/r6/last.safetensors" > "$T/r6e.out" 2>&1; then
      pass rank_stopped_ends_job "exit $rc after ${secs} s (RXC_DIST_TIMEOUT=10); last.safetensors evaluates"
    else
      fail rank_stopped_ends_job "victim '$victim', exit $rc: $(tail -c 400 "$T/r6.out") $(tail -c 200 "$T/r6e.out")"
    fi
  fi
fi

# ---- launch --------------------------------------------------------------------------
"$RXC" step "$T/nobn.net" --batch "$T/b8.safetensors" --distributed on --out "$T/x.safetensors" > "$T/on.log" 2>&1
rc=$?
if [ $rc -eq 2 ] && grep -q "not started by mpirun or srun" "$T/on.log"; then pass launch_on_without_launcher
else fail launch_on_without_launcher "exit $rc: $(tail -c 300 "$T/on.log")"; fi
RXC_MPI_LIB=/nonexistent/libmpi.so.40 "${MPI[@]}" -x RXC_MPI_LIB "$RXC" step "$T/nobn.net" --batch "$T/b8.safetensors" \
  --out "$T/x.safetensors" > "$T/nolib.log" 2>&1
rc=$?
if [ $rc -eq 2 ] && grep -q "cannot load libmpi" "$T/nolib.log" && [ ! -f "$T/x.safetensors" ]; then pass launch_without_libmpi
else fail launch_without_libmpi "exit $rc: $(tail -c 300 "$T/nolib.log")"; fi

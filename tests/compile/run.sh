#!/usr/bin/env bash
# tests/compile — invariants of the training compiler's passes:
#   - the memory plan: re-derived independently from the step schedule
#     (check_plan.py): no two simultaneously live arena buffers overlap,
#     except legal in-place pairs; peak <= naive sum; a corrupted plan is
#     caught by the same checker;
#   - fusion: a bottleneck network gets BN statistics, BN+ReLU,
#     BN+BN+residual add+ReLU, the loss with its gradient, their backward
#     groups and one optimizer kernel;
#   - `rxc summary --kernels` and `--memory` run on every model and example;
#   - `rxc emit --target c|kir` writes the generated source;
#   - the memory goal: resnext50_32x4d.net at 224x224 plans <= 0.6 x the
#     114.2 MiB per image PyTorch saves for backward (a property of the
#     plan, not a timing);
#   - the cost model (compiler/cost.c, target/cuda/gpu_specs.c) against
#     hand-computed figures (test_cost.c), and `rxc compile --estimate`:
#     its JSON parses, has the issue's keys and totals that are the sums of
#     its rows (check_estimate.py), the text form, an unknown --gpu;
#   - `rxc compile` builds exactly the trainer's program: the CUDA source
#     (with NVRTC's options) the trainer hands NVRTC on the fake GPU
#     (tests/cuda/fake_gpu.cc) and the one `rxc compile` hands it are equal
#     byte for byte, uint8 input normalize included.
#   - tensor-core alignment (gemm_align.c): every GEMM step of every model
#     compiled for the CUDA target, fp32 and bf16, has 16-byte aligned
#     operands, leading dimensions and group strides; the CPU target's
#     plain layout of resnext50 in bf16 must be caught as misaligned.
set -u
cd "$(dirname "$0")/../.."
. tests/harness.sh
. tests/cuda/fake_gpu.sh
# summary_kernels_* and memplan_* per model and example, bf16_plan_* per model, gemm_align_* twice
# per model and its control, 7 more, test_cost.c's 22, 3 of --estimate and the trainer's program
cases $((2 * $(count_files models/*.net examples/*.net) + 3 * $(count_files models/*.net) + 1 + 7 + 22 + 3 + 1 + 2 + 1 + 1))
RXC="${RXC:-./rxc}"

PYTHON="${PYTHON:-/usr/bin/python3}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for f in models/*.net examples/*.net; do
  [ -f "$f" ] || continue
  n=$(basename "$f" .net)
  if out=$("$RXC" summary "$f" --kernels --batch 2 2>&1) && echo "$out" | grep -q "distinct kernels"; then
    echo "PASS summary_kernels_$n"
  else
    echo "FAIL summary_kernels_$n: $(echo "$out" | tail -n 2 | tr '\n' ' ')"
  fi
  if "$RXC" summary "$f" --memory --json --batch 2 > "$tmp/$n.json" 2> "$tmp/$n.err"; then
    "$PYTHON" tests/compile/check_plan.py plan "$tmp/$n.json" "memplan_$n"
  else
    echo "FAIL memplan_$n: $(tail -n 2 "$tmp/$n.err" | tr '\n' ' ')"
  fi
done

if [ -f "$tmp/tiny_resnext.json" ]; then
  "$PYTHON" tests/compile/check_plan.py corrupt "$tmp/tiny_resnext.json" memplan_checker_catches_overlap
fi
# The GPU's program (bf16 on sm_90): its plan too, with the buffers the convs' input norms read
for n in tiny_resnext resnext50_32x4d; do
  if "$RXC" summary "models/$n.net" --memory --json --batch 2 --device cuda > "$tmp/$n.cuda.json" 2> "$tmp/$n.cuda.err"; then
    "$PYTHON" tests/compile/check_plan.py plan "$tmp/$n.cuda.json" "memplan_cuda_$n"
  else
    echo "FAIL memplan_cuda_$n: $(tail -n 2 "$tmp/$n.cuda.err" | tr '\n' ' ')"
  fi
done

if "$RXC" summary models/tiny_resnext.net --kernels --json --batch 4 > "$tmp/k.json" 2> "$tmp/k.err"; then
  "$PYTHON" tests/compile/check_plan.py fusion "$tmp/k.json" fusion_bottleneck_groups
else
  echo "FAIL fusion_bottleneck_groups: $(tail -n 2 "$tmp/k.err" | tr '\n' ' ')"
fi

for t in c kir cuda; do
  if "$RXC" emit models/tiny_resnext.net --target "$t" --batch 2 -o "$tmp/emit_$t" > /dev/null 2> "$tmp/emit.err" &&
     [ -s "$tmp/emit_$t/steps.txt" ] && ls "$tmp/emit_$t"/kernels.* > /dev/null 2>&1; then
    echo "PASS emit_$t"
  else
    echo "FAIL emit_$t: $(tail -n 2 "$tmp/emit.err" | tr '\n' ' ')"
  fi
done
# the emitted C is what the CPU executor compiles: it must compile warning-free on its own
if [ -s "$tmp/emit_c/kernels.c" ]; then
  if cc -std=c11 -O0 -fopenmp -Wall -c "$tmp/emit_c/kernels.c" -o "$tmp/k.o" 2> "$tmp/cc.err"; then
    echo "PASS emit_c_compiles"
  else
    echo "FAIL emit_c_compiles: $(head -n 3 "$tmp/cc.err" | tr '\n' ' ')"
  fi
fi

if out=$("$RXC" summary models/resnext50_32x4d.net --memory --batch 1 2>&1); then
  per=$(echo "$out" | awk '/planned peak/ {gsub(/[()]/, ""); print $(NF-3)}')
  if awk -v p="$per" 'BEGIN { exit !(p > 0 && p <= 0.6 * 114.2) }'; then
    echo "PASS memory_goal_resnext50_224: ${per} MiB per image <= 0.6 x 114.2"
  else
    echo "FAIL memory_goal_resnext50_224: ${per} MiB per image > 0.6 x 114.2"
  fi
else
  echo "FAIL memory_goal_resnext50_224: $(echo "$out" | tail -n 1)"
fi

# bf16 mixed precision: GEMM operand types and the plan, for every model
for f in models/*.net; do
  n=$(basename "$f" .net)
  if "$RXC" summary "$f" --memory --json --batch 2 --set precision=bf16 > "$tmp/$n.bf16.json" 2> "$tmp/$n.bf16.err"; then
    "$PYTHON" tests/compile/check_plan.py bf16 "$tmp/$n.bf16.json" "bf16_plan_$n"
  else
    echo "FAIL bf16_plan_$n: $(tail -n 2 "$tmp/$n.bf16.err" | tr '\n' ' ')"
  fi
done

# The cost model against hand-computed figures (built with the sanitizers: it is small).
work=build/tests/compile
mkdir -p "$work"
if ${CC:-cc} -std=c11 -O1 -g -Wall -Wextra -Werror -fsanitize=address,undefined -fno-sanitize-recover=all \
     -D_GNU_SOURCE -Icompiler -Itarget/cuda -Itests -o "$work/test_cost" tests/compile/test_cost.c compiler/cost.c \
     compiler/kir.c compiler/kir_analysis.c compiler/kir_text.c compiler/util.c compiler/error.c \
     target/cuda/gpu_specs.c target/cuda/render_cuda.c target/cuda/launch_cuda.c -lm 2> "$work/test_cost.log"; then
  "$work/test_cost"
else
  fail test_cost_build "$(head -c 1500 "$work/test_cost.log")"
fi

# rxc compile --estimate: the JSON of one training step, fp32 and bf16, and the text form
if "$RXC" compile models/tiny_resnext.net --estimate --json --batch 8 --set precision=fp32 > "$tmp/est.json" 2> "$tmp/est.err"; then
  "$PYTHON" tests/compile/check_estimate.py "$tmp/est.json" estimate_json_tiny_fp32
else
  fail estimate_json_tiny_fp32 "$(tail -n 2 "$tmp/est.err" | tr '\n' ' ')"
fi
if "$RXC" compile models/resnext50_32x4d.net --arch sm_90 --batch 64 --estimate --gpu h200 --json --set precision=bf16 \
     > "$tmp/est50.json" 2> "$tmp/est50.err"; then
  "$PYTHON" tests/compile/check_estimate.py "$tmp/est50.json" estimate_json_resnext50_bf16 bf16
else
  fail estimate_json_resnext50_bf16 "$(tail -n 2 "$tmp/est50.err" | tr '\n' ' ')"
fi
# conv_bn.c on the seed model's GPU program: each of the 16 grouped 3x3 convs applies
# relu(bn1) in its forward and weight gradient (so no kernel writes or recomputes that tree); the
# CPU's program has no such step (Target.conv_input_norm is NULL there)
if [ -s "$tmp/est50.json" ] && "$RXC" summary models/resnext50_32x4d.net --kernels --batch 2 > "$tmp/cpu_kernels.txt" 2>&1; then
  "$PYTHON" - "$tmp/est50.json" "$tmp/cpu_kernels.txt" <<'PY'
import json, sys
steps = json.load(open(sys.argv[1]))["steps"]
applied = lambda phase, what: sum(1 for s in steps if s["phase"] == phase and what in s["note"]
                                  and "applying its input's batchnorm" in s["note"])
fwd, wgrad = applied("forward", "conv 3x3"), applied("backward", "weight gradient")
cpu = "applying its input" in open(sys.argv[2]).read()
ok = fwd == 16 and wgrad == 16 and not cpu
print(("PASS" if ok else "FAIL") + f" conv_input_norm_resnext50: {fwd} grouped conv forwards and {wgrad} weight gradients "
      f"apply relu(bn1) (16 each expected); the CPU program applies {'some' if cpu else 'none'}")
PY
else
  fail conv_input_norm_resnext50 "no estimate or CPU kernel listing"
fi
# `recompute`: the GPU's bf16 program keeps every BN/elementwise output by default (auto), and
# `recompute blocks` rebuilds some in backward, for a smaller arena
if [ -s "$tmp/est50.json" ] && "$RXC" compile models/resnext50_32x4d.net --arch sm_90 --batch 64 --estimate --gpu h200 \
     --json --set recompute=blocks > "$tmp/est50_blocks.json" 2> "$tmp/est50_blocks.err"; then
  "$PYTHON" - "$tmp/est50.json" "$tmp/est50_blocks.json" <<'PY'
import json, sys
auto, blocks = (json.load(open(f)) for f in sys.argv[1:3])
rebuilt = lambda d: sum(1 for s in d["steps"] if "recomputed for backward" in s["note"] and "batchnorm" in s["note"])
ok = rebuilt(auto) == 0 and rebuilt(blocks) > 0 and blocks["arena_bytes"] < auto["arena_bytes"] \
     and blocks["gb_per_step"] > auto["gb_per_step"]
print(("PASS" if ok else "FAIL") + f" recompute_setting_resnext50: auto rebuilds {rebuilt(auto)} BN trees in backward "
      f"({auto['gb_per_step']:.2f} GB/step, arena {auto['arena_bytes'] / 2**20:.0f} MiB), blocks {rebuilt(blocks)} "
      f"({blocks['gb_per_step']:.2f} GB/step, arena {blocks['arena_bytes'] / 2**20:.0f} MiB)")
PY
else
  fail recompute_setting_resnext50 "$(tail -n 2 "$tmp/est50_blocks.err" | tr '\n' ' ')"
fi
out=$("$RXC" compile models/tiny_resnext.net --estimate --gpu a100 2>&1)
"$RXC" compile models/tiny_resnext.net --estimate --gpu v100 > /dev/null 2>&1
bad_gpu=$?
if echo "$out" | grep -q '^totals: .* GFLOP per step, .* GB per step, .* launches per step' &&
   echo "$out" | grep -q '^roofline: .* images/s (cost model estimate' && echo "$out" | grep -q 'A100' &&
   [ "$bad_gpu" -eq 2 ]; then
  pass estimate_text_and_unknown_gpu
else
  fail estimate_text_and_unknown_gpu "exit $bad_gpu for --gpu v100; $(echo "$out" | tail -n 2 | tr '\n' ' ')"
fi

# The trainer's program is the one `rxc compile` builds: on the fake GPU the
# trainer compiles its kernels, then stops at the empty data set; RXC_NVRTC_DUMP
# holds the text behind the cubin key (NVRTC options and the whole source).
fake=$work/fakegpu
if build_fake_gpu "$fake"; then
  fakerun() { env LD_LIBRARY_PATH="$fake" CUDA_HOME="$fake/cuda" RXC_FAKE_GPU_EMU_INCLUDE="$PWD/tests/emu" \
                  RXC_FAKE_GPU_DIR="$fake" RXC_CACHE_DIR="$fake/cache" "$@"; }
  mkdir -p "$tmp/nodata/train" "$tmp/nodata/val"
  fakerun env RXC_NVRTC_DUMP="$tmp/trainer.key" "$RXC" train models/tiny_resnext.net --device cuda \
    --set root="$tmp/nodata" --run-dir "$tmp/run" --max-steps 1 > "$tmp/tr.log" 2>&1
  fakerun env RXC_NVRTC_DUMP="$tmp/compile.key" "$RXC" compile models/tiny_resnext.net > "$tmp/co.log" 2>&1
  if [ ! -s "$tmp/trainer.key" ] || [ ! -s "$tmp/compile.key" ]; then
    fail compile_builds_trainer_program "no NVRTC input from the trainer or rxc compile: $(tail -c 600 "$tmp"/tr.log "$tmp"/co.log | tr '\n' ' ')"
  elif ! cmp -s "$tmp/trainer.key" "$tmp/compile.key"; then
    fail compile_builds_trainer_program "rxc compile and the trainer compile different CUDA sources: $(diff "$tmp/trainer.key" "$tmp/compile.key" | head -c 600 | tr '\n' ' ')"
  elif ! grep -q 'const unsigned char' "$tmp/compile.key"; then
    fail compile_builds_trainer_program "the same source, but no uint8 input normalize in it"
  else
    pass compile_builds_trainer_program "the same $(wc -c < "$tmp/compile.key") bytes of NVRTC input, uint8 normalize included"
  fi
else
  skip compile_builds_trainer_program "needs g++ for the fake GPU ($(head -c 300 "$fake/build.log" 2>/dev/null))"
fi

# every GEMM operand aligned for tensor cores on the CUDA target (tests/compile/gemm_align.c)
BUILD=build/release
objs=$(find "$BUILD/obj" -name '*.o' ! -path '*/cli/main.o' 2>/dev/null)
mkdir -p build/tests
if [ -n "$objs" ] && cc -std=c11 -O1 -Wall -Wextra -D_GNU_SOURCE -Icompiler -Iruntime -Itarget/cpu -Itarget/cuda -Icli -I. \
     -I"$BUILD/gen" -fopenmp tests/compile/gemm_align.c $objs -o build/tests/gemm_align -lcjson -ljpeg -lpng -lm -ldl \
     -lpthread 2> build/tests/gemm_align.log; then
  for f in models/*.net; do
    for prec in fp32 bf16; do build/tests/gemm_align cuda $prec "$f" "gemm_align_$(basename "$f" .net)_$prec"; done
  done
  build/tests/gemm_align cpu bf16 models/resnext50_32x4d.net gemm_align_catches_plain_layout --expect-misaligned
else
  for f in models/*.net; do
    for prec in fp32 bf16; do echo "FAIL gemm_align_$(basename "$f" .net)_$prec: gemm_align does not build: $(head -c 300 build/tests/gemm_align.log)"; done
  done
  echo "FAIL gemm_align_catches_plain_layout: gemm_align does not build"
fi

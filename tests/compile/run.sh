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
#   - tensor-core alignment (gemm_align.c): every GEMM step of every model
#     compiled for the CUDA target, fp32 and bf16, has 16-byte aligned
#     operands, leading dimensions and group strides; the CPU target's
#     plain layout of resnext50 in bf16 must be caught as misaligned.
set -u
cd "$(dirname "$0")/../.."
. tests/harness.sh
# summary_kernels_* and memplan_* per model and example, bf16_plan_* per model, gemm_align_* twice
# per model and its control, and 7 more
cases $((2 * $(count_files models/*.net examples/*.net) + 3 * $(count_files models/*.net) + 1 + 7))
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

#!/usr/bin/env bash
# tests/ops — every primitive op, forward and backward, against PyTorch
# (torch 1.13 CPU through $PYTHON): single-op .net networks with random odd
# shapes, strides, padding and groups; max relative error
# max|a-b| / max(1, max|b|) <= 1e-4 per tensor (see check_ops.py).
# The runner is tests/ops/op_runner.c (compile_training + the CPU executor,
# the interface of `rxc grad`), built here against the objects of `make`.
set -u
cd "$(dirname "$0")/../.."
. tests/harness.sh
. tests/cuda/fake_gpu.sh
PYTHON="${PYTHON:-/usr/bin/python3}"
if ! "$PYTHON" -c "import torch" 2>/dev/null; then
  fail ops "PyTorch is not available through $PYTHON (python3-torch)"
  exit 1
fi
# Cases: check_ops.py's 86 ops and its 6 whole-step checks (op_*); check_models.py's 2 whole models; 8 through `rxc grad`,
# 10 through the CUDA target's GEMMs (im2col, padded columns, padded linear rows, a 1x1 conv's padded weight rows), 2 with one thread and 2 with three, 7 through the direct kernels,
# the bf16 fake-GPU case; on x86-64 with AVX, 5 with OpenBLAS's Sandybridge kernels; where a
# GPU exists, every op_* case again on it (cuda_*), elsewhere one SKIP for them (cuda_ops).
op_cases=$((86 + 6))

avx=0
[ "$(uname -m)" = x86_64 ] && grep -qw avx /proc/cpuinfo && avx=1
gpu=0
command -v nvidia-smi > /dev/null 2>&1 && nvidia-smi -L > /dev/null 2>&1 && gpu=1
cases $((op_cases + 2 + 8 + 10 + 2 + 2 + 1 + 5 * avx + (gpu ? op_cases : 1)))
BUILD=build/release
if [ ! -x ./rxc ] || [ ! -d "$BUILD/obj" ]; then
  fail ops "build rxc first (make)"
  exit 1
fi
mkdir -p build/tests
objs=$(find "$BUILD/obj" -name '*.o' ! -path '*/cli/main.o')
if ! cc -std=c11 -O1 -D_GNU_SOURCE -Icompiler -Iruntime -Itarget/cpu -Itarget/cuda -Icli -I. -I"$BUILD/gen" -fopenmp tests/ops/op_runner.c $objs \
     -o build/tests/op_runner -lcjson -ljpeg -lpng -lm -ldl -lpthread 2> build/tests/op_runner.log; then
  fail ops_build "op_runner does not build: $(head -c 300 build/tests/op_runner.log)"
  exit 1
fi
RXC_BIN="$(cd "$(dirname "${RXC:-./rxc}")" && pwd)/$(basename "${RXC:-./rxc}")"
export RXC_CACHE_DIR="${RXC_CACHE_DIR:-$PWD/build/test-cache}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
cd tests/ops && "$PYTHON" check_ops.py "$PWD/../../build/tests/op_runner"
# whole models (examples/efficientnet_b0.net, regnet_y_400mf.net): eval-mode logits with torchvision's weights
"$PYTHON" check_models.py "$PWD/../../build/tests/op_runner"
# the same checks through the trainer's `rxc grad` for a few representative ops
"$PYTHON" check_ops.py "$RXC_BIN" grouped3x3_width4 stem7x7_stride2 batchnorm_relu residual_chain maxpool_ties mul_broadcast_se concat linear
# grouped convolutions, the stem and a linear layer lowered for the CUDA target (im2col + GEMM, columns and
# rows padded for aligned GEMM operands; the CPU target's are direct conv steps), run by the CPU executor
GROUPED="grouped3x3_width4 grouped3x3_width8 grouped3x3_width16 grouped3x3_width32 grouped3x3_width24 grouped5x5_width8_stride3_pad2 grouped3x3_width4_nopad_stride2 stem7x7_stride2 linear conv1x1_bias"
OP_LOWER_FOR=cuda OP_CASE_PREFIX=gemm_path_ "$PYTHON" check_ops.py "$PWD/../../build/tests/op_runner" $GROUPED
# the conv steps with one thread and with three: each output is summed by one task in one order
OMP_NUM_THREADS=1 OP_CASE_PREFIX=one_thread_ "$PYTHON" check_ops.py "$PWD/../../build/tests/op_runner" grouped3x3_width4 grouped3x3_width32
OMP_NUM_THREADS=3 OP_CASE_PREFIX=three_threads_ "$PYTHON" check_ops.py "$PWD/../../build/tests/op_runner" grouped3x3_width4 grouped3x3_width32
# OpenBLAS's kernel set (target/cpu/blas_cpu.c): a user's OPENBLAS_CORETYPE wins over rxc's choice, and
# the GEMM ops match PyTorch with another set (Sandybridge: AVX, on any x86-64 machine that has AVX)
if [ $avx = 1 ]; then
  v=$(OPENBLAS_CORETYPE=Sandybridge "$RXC_BIN" --version | sed -n 2p)
  case "$v" in
    *"OpenBLAS Sandybridge kernels (OPENBLAS_CORETYPE=Sandybridge)"*) echo "PASS blas_coretype_override";;
    *) echo "FAIL blas_coretype_override: rxc --version says '$v'";;
  esac
  OPENBLAS_CORETYPE=Sandybridge OP_CASE_PREFIX=sandybridge_blas_ "$PYTHON" check_ops.py "$PWD/../../build/tests/op_runner" \
    conv1x1 conv1x1_stride2 linear stem7x7_stride2
fi
# every op on the GPU executor against PyTorch, where a GPU exists
if [ $gpu = 1 ]; then
  OP_DEVICE=cuda "$PYTHON" check_ops.py "$PWD/../../build/tests/op_runner"
else
  skip cuda_ops "no GPU on this machine (the same cases run on the GPU executor where one exists)"
fi
# bf16 mixed precision end to end on the fake GPU of tests/cuda (tests/cuda/fake_gpu.sh)
cd ../..
if build_fake_gpu build/test-cuda/fakegpu; then
  (cd tests/ops && "$PYTHON" check_bf16.py "$RXC_BIN" "$PWD/../../build/test-cuda/fakegpu")
else
  fail bf16_fake_gpu_grad "the fake GPU does not build: $(head -c 300 build/test-cuda/fakegpu/build.log)"
fi

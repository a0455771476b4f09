#!/usr/bin/env bash
# tests/cuda — NVRTC checks that need no GPU: sample kernels of every kind and
# every model in models/ and examples/ compile for sm_80 and sm_90 without a
# warning (spills are printed), the cubin cache, error reporting, and the
# ABI constants of runtime/cuda/cuda_api.h against the toolkit's headers.
set -u
cd "$(dirname "$0")/../.."
CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
work=build/test-cuda
mkdir -p "$work"
if ! cc -std=c11 -O1 -g -Wall -Wextra -Werror -D_GNU_SOURCE -Icompiler -Iruntime -I. -Itests/emu \
     -DRXC_CUDA_HOME="\"$CUDA_HOME\"" -o "$work/nvrtc_units" tests/cuda/nvrtc_units.c tests/emu/sample_kernels.c \
     compiler/render_cuda.c compiler/kir.c compiler/util.c runtime/cuda/cuda_api.c runtime/cuda/nvrtc_compile.c \
     -ldl -lm 2>"$work/build.log"; then
  echo "FAIL nvrtc_units_build: $(head -c 2000 "$work/build.log")"
  exit 1
fi
"$work/nvrtc_units" "$work/cache"

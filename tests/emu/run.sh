#!/usr/bin/env bash
# tests/emu — the CUDA source render_cuda emits, run on the CPU by the fiber
# emulator (tests/emu/cuda_emu.h) and compared with an independent kernel-IR
# interpreter; deliberately broken kernels must be caught. No GPU needed.
set -u
cd "$(dirname "$0")/../.."
if ! command -v g++ >/dev/null; then echo "SKIP emu: g++ not installed"; exit 0; fi
work=build/test-emu
mkdir -p "$work"
if ! cc -std=c11 -O1 -g -Wall -Wextra -Werror -D_GNU_SOURCE -Icompiler -Iruntime -I. -Itests/emu \
     -o "$work/emu_test" tests/emu/emu_test.c tests/emu/sample_kernels.c compiler/render_cuda.c \
     compiler/kir.c compiler/util.c -ldl -lm 2>"$work/build.log"; then
  echo "FAIL emu_build: $(head -c 2000 "$work/build.log")"
  exit 1
fi
"$work/emu_test" "$work"

#!/usr/bin/env bash
# tests/emu — the CUDA source render_cuda emits, run on the CPU by the fiber
# emulator (tests/emu/cuda_emu.h) and compared with an independent kernel-IR
# interpreter and with the C backend (render_c): the hand-built sample kernels
# of every kind, then every kernel the training compiler emits for small
# models. Deliberately broken kernels must be caught. No GPU needed.
set -u
cd "$(dirname "$0")/../.."
. tests/harness.sh
# 27 sample kernels' mappings and vector (float4, 8-wide bf16) forms, 17 broken kernels, and per model one case
# for its compile; each model's kernels are the compiler's output: emu_test declares them.
# examples/modern_blocks.net covers the newer ops (param, channel slices and shuffles, norms, dilation,
# per-sample broadcasts); tests/emu/ema.net the EMA of the weights (PHASE_EMA);
# tests/emu/lamb_update.net the LAMB update (compiler/optimizer_lamb.c).
# conv_emu_test: the direct conv kernels (target/cuda/conv_cuda.c, conv_cuda_tc.c), 12 geometries x 3 passes
# x {f32, bf16} on CUDA cores, the 9 with a tensor-core form x 3 passes in bf16 on tensor cores
# (tests/emu/wmma_emu.h), and 7 + 6 broken kernels; 3 one-group geometries x 3 passes on the implicit-GEMM
# form (target/cuda/conv_igemm.c, tensor cores) in bf16 and in f32 activations, and 5 broken ones; input norms
# (ConvInputNorm): 5 geometries x {bn, bnrelu} x {forward, weight_grad} in f32 and bf16 on CUDA cores, the 4 of them
# with a tensor-core form in bf16 on tensor cores, and 5 broken ones; gradient sums (ConvGradSums): 4
# geometries x {bn, bnrelu} data gradients in bf16 on tensor cores, and 6 broken ones; output statistics
# (ConvOutStats): the same 4 geometries x {plain, bnrelu} forwards (=) in bf16 on tensor cores, and 4 broken ones
models=(models/tiny_resnext.net 3x16x16 2  examples/fig3c_grouped.net 3x16x16 2  examples/activations.net 3x16x16 2  examples/modern_blocks.net 3x16x16 2
        tests/emu/ema.net 3x16x16 2  tests/emu/lamb_update.net 3x8x8 2)
model_cases=(emu_tiny_resnext emu_fig3c_grouped emu_activations emu_modern_blocks emu_ema emu_lamb_update)
conv_cases=$((12 * 3 * 2 + 9 * 3 + 7 + 6 + 3 * 3 * 2 + 5 + 5 * 2 * 2 * 2 + 4 * 2 * 2 + 5 + 4 * 2 + 6 + 4 * 2 + 4))
cases $((27 + 17 + ${#model_cases[@]} + conv_cases))
if ! command -v g++ >/dev/null; then fail emu "g++ not installed (build-essential)"; exit 1; fi
work=build/test-emu
mkdir -p "$work"
BUILD=build/release
srcs=(tests/emu/emu_test.c tests/emu/sample_kernels.c)
flags=()
if [ -x ./rxc ] && [ -d "$BUILD/obj" ]; then
  # the training compiler and the renderers come from the objects of `make`
  mapfile -t objs < <(find "$BUILD/obj" -name '*.o' ! -path '*/cli/main.o')
  flags=(-DEMU_WITH_COMPILER -I"$BUILD/gen" -fopenmp)
  libs=(-lcjson -ljpeg -lpng -lpthread)
else
  skip_each "build rxc first (make) to emulate the kernels of real models" "${model_cases[@]}"
  models=()
  objs=(target/cuda/render_cuda.c target/cuda/launch_cuda.c target/cpu/render_c.c compiler/kir.c compiler/kir_analysis.c compiler/kir_text.c compiler/util.c compiler/error.c)
  libs=()
fi
build() {
  cc -std=c11 -O1 -g -Wall -Wextra -D_GNU_SOURCE -Icompiler -Iruntime -Itarget/cpu -Itarget/cuda -Icli -I. -Itests/emu "$@" -o "$work/emu_test" \
     "${srcs[@]}" -ldl -lm 2>"$work/build.log"
}
if ! build "${flags[@]}" "${objs[@]}" "${libs[@]}"; then
  if [ ${#models[@]} -gt 0 ]; then
    # someone's objects do not link right now: keep the sample kernels running
    skip_each "the objects of make do not link ($(grep -m1 -i error "$work/build.log" | cut -c1-200))" "${model_cases[@]}"
    models=()
    if ! build target/cuda/render_cuda.c target/cuda/launch_cuda.c target/cpu/render_c.c compiler/kir.c compiler/kir_analysis.c compiler/kir_text.c compiler/util.c compiler/error.c; then
      fail emu_build "$(head -c 2000 "$work/build.log")"
      exit 1
    fi
  else
    fail emu_build "$(head -c 2000 "$work/build.log")"

    exit 1
  fi
fi
"$work/emu_test" "$work" "${models[@]}" || status=1
if cc -std=c11 -O1 -g -Wall -Wextra -Werror -D_GNU_SOURCE -Icompiler -Iruntime -Itarget/cpu -Itarget/cuda -Icli -I. -Itests/emu \
     -o "$work/conv_emu_test" tests/emu/conv_emu_test.c target/cuda/conv_cuda.c target/cuda/conv_cuda_tc.c target/cuda/conv_igemm.c target/cuda/render_cuda.c target/cuda/launch_cuda.c compiler/kir.c \
     compiler/kir_analysis.c compiler/kir_text.c compiler/util.c compiler/error.c -ldl -lm 2>"$work/conv_build.log"; then
  "$work/conv_emu_test" "$work" || status=1
else
  fail conv_emu_build "$(head -c 2000 "$work/conv_build.log")"
  status=1
fi
exit ${status:-0}

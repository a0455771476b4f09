#!/usr/bin/env bash
# tests/kir — kernel IR, C renderer, JIT cache and CPU executor.
# Builds tests/kir/test_kir.c against the sources it tests (not against ./rxc,
# so other parts of the tree being mid-edit cannot break it), then runs it.
# test_kir prints one PASS/FAIL line per case; tolerances are in test_kir.c.
set -u
cd "$(dirname "$0")/../.."
. tests/harness.sh
# test_kir.c: 43; test_conv_cpu.c: 120 (20 shapes x 3 passes, plain and accumulating) per build
# (the native build, and on x86-64 the x86-64-v3 and baseline builds too); conv_cpu_asan_ubsan
conv_builds=1
[ "$(uname -m)" = x86_64 ] && conv_builds=3
cases $((43 + 120 * conv_builds + 1))
out=build/tests/kir
mkdir -p "$out"
cache="${RXC_CACHE_DIR:-$PWD/build/test-cache}/kir"
mkdir -p "$cache"
srcs="compiler/kir.c compiler/kir_analysis.c compiler/kir_text.c target/cpu/render_c.c target/cuda/render_cuda.c target/cuda/launch_cuda.c compiler/util.c compiler/error.c target/cpu/jit.c target/cpu/exec_cpu.c target/cpu/conv_cpu.c target/cpu/blas_cpu.c"
if ! ${CC:-cc} -std=c11 -O2 -g -Wall -Wextra -Werror -fopenmp -D_GNU_SOURCE -Icompiler -Iruntime -Itarget/cpu -Itarget/cuda -Icli -I. \
      tests/kir/test_kir.c $srcs -o "$out/test_kir" -lm -ldl 2> "$out/build.log"; then
  fail build_test_kir "$(head -c 2000 "$out/build.log")"
  exit 1
fi
"$out/test_kir" "$cache"
# the direct conv library (STEP_CONV) on its own, against a float64 reference.
# build_conv NAME FLAGS...: builds $out/test_conv_cpu_NAME, its errors in $out/build_conv_NAME.log
build_conv() {
  local name=$1; shift
  ${CC:-cc} -std=c11 -fopenmp -D_GNU_SOURCE -Icompiler -Iruntime -Itarget/cpu -Itarget/cuda -Icli -I. "$@" tests/kir/test_conv_cpu.c target/cpu/conv_cpu.c \
    -o "$out/test_conv_cpu_$name" -lm 2> "$out/build_conv_$name.log"
}
if ! build_conv native -O2 -g -Wall -Wextra -Werror; then
  fail build_test_conv_cpu "$(head -c 2000 "$out/build_conv_native.log")"
  exit 1
fi
"$out/test_conv_cpu_native"
# the same source built for one target each: AVX2 + FMA (x86-64-v3) and the baseline, the
# versions a machine without AVX-512 (or without AVX2) runs; the build above picks one at load time
if [ "$(uname -m)" = x86_64 ]; then
  for v in "v3:-march=x86-64-v3" "baseline:-march=x86-64"; do
    name=${v%%:*}
    if build_conv "$name" -O2 -Wall -Wextra -Werror -DCONV_CPU_SINGLE_TARGET "${v#*:}"; then
      "$out/test_conv_cpu_$name" "${name}_"
    else
      fail "build_test_conv_cpu_$name" "$(head -c 1000 "$out/build_conv_$name.log")"
    fi
  done
fi
# the same cases under AddressSanitizer + UBSan (tap tables, the zero row, block tails)
if build_conv asan -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all; then
  if "$out/test_conv_cpu_asan" > "$out/conv_asan.log" 2>&1; then
    pass conv_cpu_asan_ubsan "every form and pass, clean under ASan + UBSan"
  else
    fail conv_cpu_asan_ubsan "$(grep -m3 -E 'ERROR|runtime error|FAIL' "$out/conv_asan.log" | tr '\n' ' ')"
  fi
else
  skip conv_cpu_asan_ubsan "no sanitizer runtime ($(head -c 200 "$out/build_conv_asan.log"))"

fi

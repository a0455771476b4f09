# fake_gpu.sh — sourced by tests/cuda and tests/ops: builds the fake GPU
# (tests/cuda/fake_gpu.cc: the driver, NVRTC and cuBLAS entry points on the
# CPU) so that each suite can run on its own, in any order.
#   build_fake_gpu DIR   DIR/libcuda.so.1, and DIR/cuda/lib64/libnvrtc.so and
#                        libcublas.so (the same library) for CUDA_HOME=DIR/cuda;
#                        rebuilt only when fake_gpu.cc or this file is newer;
#                        compiler errors in DIR/build.log
build_fake_gpu() {
  local dir=$1 lib=$1/libcuda.so.1
  mkdir -p "$dir/cuda/lib64"
  if [ ! "$lib" -nt tests/cuda/fake_gpu.cc ] || [ ! "$lib" -nt tests/cuda/fake_gpu.sh ]; then
    # a new name, then a rename: a suite running concurrently never loads a half-written library
    g++ -std=c++17 -O1 -Wall -Wextra -Werror -shared -fPIC -o "$lib.new" tests/cuda/fake_gpu.cc 2> "$dir/build.log" ||
      return 1
    mv "$lib.new" "$lib"
  fi
  cp "$lib" "$dir/cuda/lib64/libnvrtc.so"
  cp "$lib" "$dir/cuda/lib64/libcublas.so"
}

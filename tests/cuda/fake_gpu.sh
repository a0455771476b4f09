# fake_gpu.sh — sourced by tests/cuda and tests/ops: builds the fake GPU
# (tests/cuda/fake_gpu.cc: the driver, NVRTC and cuBLAS entry points on the
# CPU) so that each suite can run on its own, in any order.
#   build_fake_gpu DIR   DIR/libcuda.so.1, and DIR/cuda/lib64/libnvrtc.so and
#                        libcublas.so (the same library) for CUDA_HOME=DIR/cuda;
#                        rebuilt only when fake_gpu.cc, cuda_emu_sink.h or this
#                        file is newer; every file replaced by a rename;
#                        compiler errors in DIR/build.log
build_fake_gpu() {
  local dir=$1 lib=$1/libcuda.so.1
  mkdir -p "$dir/cuda/lib64"
  if [ ! "$lib" -nt tests/cuda/fake_gpu.cc ] || [ ! "$lib" -nt tests/cuda/fake_gpu.sh ] ||
     [ ! "$lib" -nt tests/emu/cuda_emu_sink.h ]; then
    # a new name, then a rename: a suite running concurrently never loads a half-written library
    g++ -std=c++17 -O2 -Wall -Wextra -Werror -shared -fPIC -o "$lib.new.$$" tests/cuda/fake_gpu.cc 2> "$dir/build.log" ||
      return 1
    mv "$lib.new.$$" "$lib"
  fi
  # copies replace by rename too: a process still running has the old file mapped,
  # and overwriting it in place would kill that process with SIGBUS
  local copy
  for copy in libnvrtc.so libcublas.so; do
    if [ ! "$dir/cuda/lib64/$copy" -nt "$lib" ]; then
      cp "$lib" "$dir/cuda/lib64/$copy.new.$$" && mv "$dir/cuda/lib64/$copy.new.$$" "$dir/cuda/lib64/$copy" || return 1
    fi
  done
}

#   build_fake_nccl DIR  DIR/cuda/lib64/libnccl.so.2 from tests/cuda/fake_nccl.cc
#                        (for CUDA_HOME=DIR/cuda; needs build_fake_gpu's libcuda)
build_fake_nccl() {
  local dir=$1 lib=$1/cuda/lib64/libnccl.so.2
  mkdir -p "$dir/cuda/lib64"
  if [ ! "$lib" -nt tests/cuda/fake_nccl.cc ] || [ ! "$lib" -nt tests/cuda/fake_gpu.sh ]; then
    g++ -std=c++17 -O2 -Wall -Wextra -Werror -shared -fPIC -o "$lib.new.$$" tests/cuda/fake_nccl.cc -ldl \
      2> "$dir/build_nccl.log" || return 1
    mv "$lib.new.$$" "$lib"
  fi
}

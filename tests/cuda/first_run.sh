# first_run.sh — sourced by tests/cuda/run.sh: the fake-GPU cases of "a
# first run that works" (issue 13) and of the module split into NVRTC parts.
#   fake_first_run_checks   prints one PASS/FAIL line per case; returns 1 when
#                           any failed. Uses run.sh's fakerun and fake_env, RXC, work,
#                           net (tiny_resnext), b (its batch), and the logs of
#                           the grad (fg) and 3-step (fs_on, fs_off) runs.
# Each case can fail: the fake GPU reports errors on request
# (RXC_FAKE_GPU_FAIL=FUNCTION:CODE), an old driver
# (RXC_FAKE_GPU_DRIVER_VERSION) and the GEMMs' TF32 use (its counts line).

# "PASS name detail" when the command succeeds, else "FAIL name why".
first_run_case() {
  local name=$1 why=$2
  shift 2
  if "$@"; then echo "PASS $name"; else echo "FAIL $name: $why"; return 1; fi
}

# The largest count before "$2" on the fake's counts lines of log $1.
fake_count() { sed -n "s/.* \([0-9]*\) $2.*/\1/p" "$1" | sort -n | tail -1; }

# Runs a command (an executable) until its device line appears (or 300 s),
# stops it, and prints the line.
device_line() {
  local log=$1 try
  shift
  # Twice under a loaded machine (load ~17, and with other test suites beside it) the CPU case's log
  # stayed empty: the command printed nothing at all and ended. Once more then, so that a missing
  # device line must fail twice; run_until appends how the command ended to the log.
  for try in 1 2; do
    run_until '^rxc: device' "$log" "$@" && break
    [ "$try" = 1 ] && cp "$log" "$log.first"
  done
  grep '^rxc: device' "$log" | head -1
}

fake_first_run_checks() {
  local st=0 log
  # The module as 3 NVRTC parts (3 CUmodules) and as one: the same gradients, bit for bit.
  fakerun env RXC_NVRTC_THREADS=1 RXC_VERBOSE=1 "$RXC" grad $net --batch "$b" --device cuda --set precision=fp32 \
    --out "$work/fg_one.st" >"$work/fg_one.log" 2>&1
  first_run_case exec_cuda_split_module_same_results \
    "$(grep -o '([0-9]* parts*)' "$work/fg_one.log" | head -1); $(tail -c 600 "$work/fg_one.log" | tr '\n' ' ')" \
    eval 'grep -q "(1 part)" "$work/fg_one.log" && cmp -s "$work/fg_one.st" "$work/fg_cuda.st"' || st=1

  # cuBLAS and driver failures carry the status's name and code.
  fakerun env RXC_FAKE_GPU_FAIL=cublasGemmStridedBatchedEx:15 "$RXC" grad $net --batch "$b" --device cuda \
    --out "$work/fe_blas.st" >"$work/fe_blas.log" 2>&1
  fakerun env RXC_FAKE_GPU_FAIL=cuLaunchKernel:700 "$RXC" grad $net --batch "$b" --device cuda \
    --out "$work/fe_launch.st" >"$work/fe_launch.log" 2>&1
  first_run_case exec_cuda_status_names_in_errors "$(cat "$work/fe_blas.log" "$work/fe_launch.log" | grep -v '^fake' |
    head -c 1200 | tr '\n' ' ')" eval 'grep -q "CUBLAS_STATUS_NOT_SUPPORTED (15)" "$work/fe_blas.log" &&
    grep -q "CUDA_ERROR_ILLEGAL_ADDRESS (700): an illegal memory access" "$work/fe_launch.log"' || st=1

  # A capture that fails stops the run; RXC_NO_GRAPH=1 (the fs_off run, with the same failure injected) runs
  # every step directly and matches the CPU (exec_cuda_fake_gpu_adamw_3_steps compared it with graph replay).
  fakerun env RXC_FAKE_GPU_FAIL=cuStreamEndCapture:901 "$RXC" step $net --batch "$b" --device cuda --steps 3 \
    --out "$work/fs_capfail.st" >"$work/fs_capfail.log" 2>&1
  log="$work/fs_capfail.log"
  first_run_case exec_cuda_capture_failure_is_error "$(grep -v '^fake' "$log" | head -c 1000 | tr '\n' ' ')" \
    eval '! [ -s "$work/fs_capfail.st" ] && grep -q "as a CUDA graph failed (RXC_NO_GRAPH=1 runs without graphs)" "$log" &&
    grep -q "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED (901)" "$log"' || st=1
  first_run_case exec_cuda_no_graph_runs_direct "$(tail -c 800 "$work/fs_off.log" | tr '\n' ' ')" \
    eval '[ -s "$work/fs_off.st" ] && [ "$(fake_count "$work/fs_off.log" "graph launches")" = 0 ] &&
    [ "$(fake_count "$work/fs_off.log" "kernel launches")" -gt 0 ]' || st=1

  # RXC_TF32 decides both ways: =0 under precision tf32 gives no TF32 GEMM, =1 under fp32 gives some.
  fakerun env RXC_TF32=0 "$RXC" grad $net --batch "$b" --device cuda --set precision=tf32 --out "$work/ft0.st" \
    >"$work/ft0.log" 2>&1
  fakerun env RXC_TF32=1 "$RXC" grad $net --batch "$b" --device cuda --set precision=fp32 --out "$work/ft1.st" \
    >"$work/ft1.log" 2>&1
  local off on
  off=$(sed -n 's/.*gemms (\([0-9]*\) tf32).*/\1/p' "$work/ft0.log" | sort -n | tail -1)
  on=$(sed -n 's/.*gemms (\([0-9]*\) tf32).*/\1/p' "$work/ft1.log" | sort -n | tail -1)
  first_run_case exec_cuda_tf32_env_decides "RXC_TF32=0 with precision tf32: ${off:-none} TF32 GEMMs (want 0); \
RXC_TF32=1 with fp32: ${on:-none} (want > 0)" eval '[ "${off:-x}" = 0 ] && [ "${on:-0}" -gt 0 ]' || st=1

  # A driver older than the toolkit: an error with both versions and what to install, before any compile.
  fakerun env RXC_FAKE_GPU_DRIVER_VERSION=12040 "$RXC" grad $net --batch "$b" --device cuda --out "$work/fd.st" \
    >"$work/fd.log" 2>&1
  first_run_case exec_cuda_driver_too_old_is_error "$(head -c 800 "$work/fd.log" | tr '\n' ' ')" \
    eval 'grep -q "driver supports CUDA 12.4, but NVRTC is CUDA 99.0" "$work/fd.log" &&
    grep -q "install a newer NVIDIA driver (one for CUDA 99.0 or newer)" "$work/fd.log"' || st=1

  # `device auto` says what it chose and why, in one line, without RXC_VERBOSE: the fake GPU, then the CPU when
  # the driver is too old.
  local demo="$work/demo_digits" gpu cpu
  [ -d "$demo/train" ] || "$RXC" demo --out "$demo" >/dev/null 2>&1
  local train=("$RXC" examples/ablation_digits.net --set "root=\"$demo\"" --set epochs=1 --device auto)
  gpu=$(device_line "$work/auto_gpu.log" "${fake_env[@]}" env -u RXC_VERBOSE "${train[@]}" --run-dir "$work/auto_gpu")
  cpu=$(device_line "$work/auto_cpu.log" "${fake_env[@]}" env -u RXC_VERBOSE RXC_FAKE_GPU_DRIVER_VERSION=12040 "${train[@]}" \
    --run-dir "$work/auto_cpu")
  first_run_case device_auto_says_why "GPU: '$gpu'; CPU: '$cpu'" eval \
    '[[ "$gpu" == "rxc: device: cuda:0 (fake GPU (CPU emulation), sm_90, driver 99.0)" ]] &&
    [[ "$cpu" == "rxc: device: cpu ("*"); the GPU is present but unusable: the NVIDIA driver supports CUDA 12.4,"* ]] &&
    [ "$(grep -c "^rxc: device" "$work/auto_cpu.log")" = 1 ]' || st=1
  return $st
}

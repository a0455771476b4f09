#!/usr/bin/env bash
# bench/device_check.sh — the one script to run when a GPU is lent: builds
# rxc, runs tests/gpu (the CUDA executor against the CPU, every op and the
# seed model's gradients), then bench/gpu.sh (rxc against PyTorch: the step,
# memory, NVRTC compile time, whole epochs from JPEG files, RXC_PROFILE's
# table of every kernel against the cost model, kept in $OUT), within about
# 9 minutes in all. Logs go to $OUT when it is set (the device tool's
# return folder), else build/device-check/.
#   bench/device_check.sh [TESTS_SECONDS]     (default 200 for tests/gpu)
set -u
cd "$(dirname "$0")/.."
out="${OUT:-build/device-check}"
mkdir -p "$out"
start=$SECONDS
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true; nproc; } >"$out/machine.txt" 2>&1
if ! make -j"$(nproc)" >"$out/build.log" 2>&1; then
  echo "device_check: build failed:"; tail -20 "$out/build.log"; exit 1
fi
echo "build: $((SECONDS - start)) s"
timeout "${1:-200}" bash tests/run_all.sh gpu >"$out/tests_gpu.log" 2>&1
echo "tests/gpu: rc $? after $((SECONDS - start)) s: $(grep -c '^PASS' "$out/tests_gpu.log") passed," \
     "$(grep -c '^FAIL' "$out/tests_gpu.log") failed, $(grep -c '^SKIP' "$out/tests_gpu.log") skipped"
grep '^FAIL' "$out/tests_gpu.log" | head -20
timeout 420 bash bench/gpu.sh >"$out/bench_gpu.log" 2>&1
echo "bench/gpu.sh: rc $? after $((SECONDS - start)) s"
cat "$out/bench_gpu.log"
# RXC_PROFILE's whole table (bench/gpu.sh prints its top rows): measured against the cost model
cp build/bench-gpu/profile.txt build/bench-gpu/profile.jsonl "$out/" 2>/dev/null || echo "no RXC_PROFILE table"

# profile.sh — sourced by tests/cuda/run.sh (the fake GPU) and tests/gpu/run.sh
# (a real one): RXC_PROFILE's report against the cost model.
#   profile_case NAME DIR [COMMAND PREFIX...]
#       prints one PASS/FAIL line; returns 1 when it failed. Uses RXC,
#       PYTHON and run_until (tests/harness.sh); the prefix (e.g. the fake
#       GPU's `env ...`) runs rxc.
# `rxc train` (the trainer's own program, input normalize included, which is
# what `rxc compile --estimate` models) of examples/ablation_digits.net at
# batch 4, on a CIFAR-10 binary set of 96 random images written here, times
# 2 training steps after the first; once the report is out the run would go
# on training, so the case stops it there. check_profile.py checks the
# report's structure against the estimate of the same program. Measured
# times are not checked: on the fake GPU they are its CPU emulation's,
# meaningless as GPU times.
profile_case() {
  local name=$1 dir=$2 gpu
  shift 2
  local log="$dir/profile.log" jsonl="$dir/profile.jsonl" cifar="$dir/profile_cifar"
  local net=examples/ablation_digits.net
  local settings=(--set "root=\"$cifar\"" --set layout=cifar10 --set batch=4)
  mkdir -p "$cifar"
  "$PYTHON" -c "import numpy as np, sys
r = np.random.default_rng(0)
for f in ['data_batch_%d.bin' % i for i in range(1, 6)] + ['test_batch.bin']:
    rec = r.integers(0, 256, (16, 3073)).astype(np.uint8)
    rec[:, 0] = np.arange(16) % 10
    rec.tofile(sys.argv[1] + '/' + f)" "$cifar"
  rm -f "$jsonl"
  run_until '^totals: ' "$log" "$@" env RXC_PROFILE=1 RXC_PROFILE_STEPS=2 RXC_PROFILE_JSON="$jsonl" "$RXC" train $net \
    "${settings[@]}" --set epochs=1 --device cuda --run-dir "$dir/profile_run"
  gpu=$(sed -n 's/.*"gpu":"\([a-z0-9]*\)".*/\1/p' "$jsonl" 2>/dev/null | head -1)
  if [ -z "$gpu" ] ||
     ! "$RXC" compile $net "${settings[@]}" --estimate --json --gpu "$gpu" >"$dir/profile_estimate.json" 2>>"$log"; then
    echo "FAIL $name: no report, or no estimate: $(grep -v '^ ' "$log" | tail -c 1200 | tr '\n' ' ')"
    return 1
  fi
  grep '^totals: ' "$log" | sed 's/^/  /'
  "$PYTHON" tests/cuda/check_profile.py "$jsonl" "$dir/profile_estimate.json" "$log" "$name"
}

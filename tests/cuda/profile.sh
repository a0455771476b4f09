# profile.sh — sourced by tests/cuda/run.sh: RXC_PROFILE through the fake GPU.
#   fake_profile_check   prints one PASS/FAIL line (exec_cuda_profile_against_cost_model);
#                        returns 1 when it failed. Uses run.sh's fake_env, RXC, work, PYTHON.
# `rxc train` (the trainer's own program, input normalize included, which is
# what `rxc compile --estimate` models) times 2 training steps after the
# first; once the report is out the run would go on training, so the case
# stops it there. check_profile.py checks the report's structure against
# the estimate of the same program; the measured times are the fake's CPU
# emulation, meaningless as GPU times, and are not checked.
fake_profile_check() {
  local name=exec_cuda_profile_against_cost_model demo="$work/demo_digits" log="$work/profile.log"
  local jsonl="$work/profile.jsonl" i gpu
  local net=examples/ablation_digits.net
  local settings=(--set "root=\"$demo\"" --set batch=4)
  [ -d "$demo/train" ] || "$RXC" demo --out "$demo" >/dev/null 2>&1
  rm -f "$jsonl"
  "${fake_env[@]}" RXC_PROFILE=1 RXC_PROFILE_STEPS=2 RXC_PROFILE_JSON="$jsonl" "$RXC" train $net "${settings[@]}" \
    --set epochs=1 --device cuda --run-dir "$work/profile_run" >"$log" 2>&1 &
  local pid=$!
  for i in $(seq 600); do
    grep -q '^totals: ' "$log" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  kill "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  gpu=$(sed -n 's/.*"gpu":"\([a-z0-9]*\)".*/\1/p' "$jsonl" 2>/dev/null | head -1)
  if [ -z "$gpu" ] ||
     ! "$RXC" compile $net "${settings[@]}" --estimate --json --gpu "$gpu" >"$work/profile_estimate.json" 2>>"$log"; then
    echo "FAIL $name: no report, or no estimate: $(grep -v '^ ' "$log" | tail -c 1200 | tr '\n' ' ')"
    return 1
  fi
  "$PYTHON" tests/cuda/check_profile.py "$jsonl" "$work/profile_estimate.json" "$log" $name
}

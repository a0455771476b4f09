#!/usr/bin/env bash
# run_all.sh — runs every test suite and prints one summary line.
#
# A suite is a directory tests/NAME/ with an executable run.sh. It runs from
# the repository root and prints one line per test case:
#     PASS name      FAIL name: why      SKIP name: why
# Anything else it prints is shown as-is. A suite that exits non-zero
# without printing a FAIL line counts as one failure.
# Usage: tests/run_all.sh [SUITE...]
set -u
cd "$(dirname "$0")/.."
export PYTHON="${PYTHON:-/usr/bin/python3}"
export RXC="${RXC:-$PWD/rxc}"
export RXC_ASAN="${RXC_ASAN:-$PWD/build/asan/rxc}"
export RXC_CACHE_DIR="${RXC_CACHE_DIR:-$PWD/build/test-cache}"

suites=("$@")
if [ ${#suites[@]} -eq 0 ]; then
  for d in tests/*/; do [ -x "$d/run.sh" ] && suites+=("$(basename "$d")"); done
fi

pass=0; fail=0; skip=0; failed_names=()
for s in "${suites[@]}"; do
  echo "== suite $s"
  start=$(date +%s)
  log=$(mktemp)
  bash "tests/$s/run.sh" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  p=$(grep -c '^PASS ' "$log"); f=$(grep -c '^FAIL ' "$log"); k=$(grep -c '^SKIP ' "$log")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    echo "FAIL $s: suite exited with status $rc"
    f=1
  fi
  pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + k))
  [ "$f" -gt 0 ] && failed_names+=("$s")
  echo "== suite $s: $p passed, $f failed, $k skipped ($(( $(date +%s) - start ))s)"
  rm -f "$log"
done
echo
[ ${#failed_names[@]} -gt 0 ] && echo "failing suites: ${failed_names[*]}"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]

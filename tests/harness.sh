# harness.sh — sourced by every suite's run.sh, from the repository root.
# The line format and the rules are those of tests/run_all.sh:
#   cases N            declare the number of cases (before the first case line)
#   pass NAME [DETAIL] / fail NAME WHY / skip NAME WHY
#   skip_each WHY NAME...   one SKIP per case of a group that cannot run, so
#                           that the count stays what the suite declared
#   count_files GLOB...     how many of the given paths exist (for counts that
#                           follow the repository's files, e.g. models/*.net)
#   run_until PATTERN LOG COMMAND...   runs COMMAND (an executable, so that $!
#                           is its process) in the background, output to LOG,
#                           until a line of LOG matches PATTERN (grep) or it
#                           exits (300 s at most), then stops it
# It also puts tests/ on PYTHONPATH, so that Python checkers `import harness`,
# and names in RXC_TEST_DATA the test data that `make setup` (scripts/setup.sh)
# unpacks: china.jpg, flower.jpg and digits.csv.gz. No suite fetches anything.
export PYTHONPATH="$PWD/tests${PYTHONPATH:+:$PYTHONPATH}"
export RXC_TEST_DATA="$PWD/build/deps/sklearn"

cases() { echo "CASES $1"; }
pass() { echo "PASS $1${2:+: $2}"; }
fail() { echo "FAIL $1: $2"; }
skip() { echo "SKIP $1: $2"; }
skip_each() {
  local why=$1 name
  shift
  for name in "$@"; do skip "$name" "$why"; done
}
count_files() {
  local n=0 f
  for f in "$@"; do [ -e "$f" ] && n=$((n + 1)); done
  echo "$n"
}
run_until() {
  local pattern=$1 log=$2 i pid rc
  shift 2
  "$@" >"$log" 2>&1 &
  pid=$!
  for i in $(seq 600); do
    grep -q "$pattern" "$log" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  grep -q "$pattern" "$log" && { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; return 0; }
  kill "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  rc=$?
  # the test's message then says how the command ended
  echo "run_until: '$pattern' never appeared (after $i polls of 0.5 s; the command's exit status $rc)" >>"$log"
  return 1
}

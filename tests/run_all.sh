#!/usr/bin/env bash
# run_all.sh — runs the test suites and prints one summary line.
#
#   tests/run_all.sh                 every suite
#   tests/run_all.sh SUITE...        the suites named
#   tests/run_all.sh SUITE CASE      one case of one suite (CASE is not a suite's name)
#
# A suite is a directory tests/NAME/ with an executable run.sh. It runs from
# the repository root, sources tests/harness.sh, and prints
#     CASES N                 before its first case: how many cases it runs
#     PASS name[: detail]     one line per case: name is one word, unique in the suite
#     FAIL name: why
#     SKIP name: why
# Anything else it prints is shown as-is. C test programs print these lines
# through tests/harness.h, Python checkers through tests/harness.py, shell
# code through tests/harness.sh (pass/fail/skip).
#
# Declaring N. `cases N` (harness.sh) prints the CASES line at the top of
# run.sh. N is a number written there, or a sum whose terms follow the
# repository's files (count_files models/*.net) or the machine (whether it
# has a GPU, an x86-64 CPU) — never what actually ran. A case prints its line
# whether it passes, fails or cannot run; a group of cases that cannot run
# prints one SKIP per case (skip_each), so the count holds either way. Adding
# a case means adding 1 to that suite's N. Several CASES lines add up: the
# one exception to declaring everything in run.sh is a case list that is the
# compiler's output (tests/emu's kernels of real models), which the program
# declares (harness_cases) once it has the list and before it runs any.
#
# A suite fails when it
#   - prints a FAIL line, or exits non-zero;
#   - prints no CASES line, or a number of PASS+FAIL+SKIP lines other than N
#     (a case that silently stopped running, or a new one not declared);
#   - prints one case name twice;
#   - prints a SKIP whose reason does not start with "no GPU" (strict mode:
#     the default, and what `make test` and CI run). RXC_TEST_LENIENT=1 lets
#     such SKIPs pass, for a developer's machine that lacks something
#     `make setup` installs; the counts are checked all the same.
#
# One case. `run_all.sh SUITE CASE` exports RXC_TEST_CASE=CASE to the suite.
# Where one case is cheap to run alone, the suite (or its Python checker,
# through harness.selected) runs only that one: tests/ops and tests/gpu run the one op,
# tests/train the one group of test_rxc.py, tests/data the one image
# comparison; elsewhere the whole suite runs. Either way only CASE's line is
# shown and judged (not the suite's count or exit status), and it must
# appear exactly once.

set -u
cd "$(dirname "$0")/.."
export PYTHON="${PYTHON:-/usr/bin/python3}"
export RXC="${RXC:-$PWD/rxc}"
export RXC_ASAN="${RXC_ASAN:-$PWD/build/asan/rxc}"
export RXC_CACHE_DIR="${RXC_CACHE_DIR:-$PWD/build/test-cache}"
lenient="${RXC_TEST_LENIENT:-0}"
[ "$lenient" = 0 ] && lenient=""

suites=("$@")
only_case=""
if [ $# -eq 2 ] && [ -x "tests/$1/run.sh" ] && [ ! -x "tests/$2/run.sh" ]; then
  suites=("$1")
  only_case=$2
fi
if [ ${#suites[@]} -eq 0 ]; then
  for d in tests/*/; do [ -x "$d/run.sh" ] && suites+=("$(basename "$d")"); done
fi
unset RXC_TEST_CASE
[ -n "$only_case" ] && export RXC_TEST_CASE="$only_case"

# The verdict lines of one case, or every line (only_case empty).
show() {
  if [ -z "$only_case" ]; then cat
  else awk -v want="$only_case" '/^CASES / { next } /^(PASS|FAIL|SKIP) / { n = $2; sub(/:.*/, "", n); if (n != want) next }
                                 { print; fflush() }'

  fi
}

# judge LOG STATUS: prints "passed failed skipped" for the suite's log, and a
# FAIL line for each rule above that the suite broke.
judge() {
  awk -v want="$only_case" -v lenient="$lenient" -v status="$2" -v suite="$3" '
    /^CASES [0-9]+$/ { declared += $2; declarations++; next }
    /^(PASS|FAIL|SKIP) / {
      name = $2; sub(/:.*/, "", name)
      if (want != "" && name != want) next
      if (seen[name]++) duplicates = duplicates " " name
      lines++
      if ($1 == "PASS") p++
      else if ($1 == "FAIL") f++
      else {
        k++
        reason = $0; sub(/^SKIP [^ :]*:? */, "", reason)
        if (reason !~ /^no GPU/ && !lenient) { strict = strict " " name; nstrict++ }
      }
    }
    END {
      extra = 0
      # one case: the status may come from the other cases, which were not asked for
      if (status != 0 && f == 0 && want == "") { print "FAIL " suite ": the suite exited with status " status; extra++ }

      if (want != "") {
        if (lines != 1) { print "FAIL " suite ": case " want " printed " lines + 0 " lines, not 1"; extra++ }
      } else if (declarations == 0) {
        print "FAIL " suite ": no CASES line (declare the number of cases: cases N, tests/harness.sh)"; extra++
      } else if (lines != declared) {
        print "FAIL " suite ": " lines + 0 " cases reported, " declared " declared"; extra++
      }
      if (duplicates != "") { print "FAIL " suite ": case names printed twice:" duplicates; extra++ }
      if (strict != "") {
        print "FAIL " suite ": strict mode: skipped for a reason other than \"no GPU\":" strict \
              " (install what make setup installs, or RXC_TEST_LENIENT=1)"; extra += nstrict

      }
      print "RESULT " p + 0, f + extra, k + 0
    }' "$1"
}

pass=0; fail=0; skip=0; failed_names=()

# record SUITE LOG STATUS START: judges a finished suite's log and adds it to the totals.
record() {
  local s=$1 log=$2 status=$3 start=$4 verdict p f k
  if [ "$status" = missing ]; then
    verdict=$(printf 'FAIL %s: no suite tests/%s/run.sh\nRESULT 0 1 0\n' "$s" "$s")
  else
    verdict=$(judge "$log" "$status" "$s")
  fi
  printf '%s\n' "$verdict" | grep -v '^RESULT '
  read -r p f k < <(printf '%s\n' "$verdict" | sed -n 's/^RESULT //p')
  pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + k))
  [ "$f" -gt 0 ] && failed_names+=("$s")
  echo "== suite $s: $p passed, $f failed, $k skipped ($(( $(date +%s) - start ))s)"
}

# tests/cuda is long and mostly single-threaded (the fake GPU's emulator), the
# others use about one core between them: with several suites and 2 or more
# cores, cuda runs alongside them at a lower priority and is shown last.
background=""
if [ ${#suites[@]} -gt 1 ] && [ -z "$only_case" ] && [ "$(nproc)" -ge 2 ] && [ -x tests/cuda/run.sh ] &&
   [[ " ${suites[*]} " == *" cuda "* ]] && [ "${RXC_TEST_SERIAL:-0}" = 0 ]; then
  background=cuda
  bg_log=$(mktemp); bg_status=$(mktemp); bg_start=$(date +%s)
  ( nice -n 5 bash tests/cuda/run.sh >"$bg_log" 2>&1; echo $? >"$bg_status" ) &
  bg_pid=$!
fi

for s in "${suites[@]}"; do
  [ "$s" = "$background" ] && continue
  echo "== suite $s${only_case:+, case $only_case}"
  start=$(date +%s)
  log=$(mktemp)
  if [ -x "tests/$s/run.sh" ]; then
    bash "tests/$s/run.sh" 2>&1 | tee "$log" | show
    record "$s" "$log" "${PIPESTATUS[0]}" "$start"
  else
    record "$s" "$log" missing "$start"
  fi
  rm -f "$log"
done
if [ -n "$background" ]; then
  echo "== suite $background (ran alongside the others)"
  wait "$bg_pid"
  show <"$bg_log"
  record "$background" "$bg_log" "$(cat "$bg_status")" "$bg_start"
  rm -f "$bg_log" "$bg_status"
fi
echo
[ ${#failed_names[@]} -gt 0 ] && echo "failing suites: ${failed_names[*]}"
echo "$pass passed, $fail failed, $skip skipped${lenient:+ (lenient: SKIPs allowed)}"
[ "$fail" -eq 0 ]

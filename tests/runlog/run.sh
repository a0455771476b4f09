#!/usr/bin/env bash
# tests/runlog — the run directory: metrics.csv/jsonl, TensorBoard event
# files (independent strict reader; TensorBoard's own where installed),
# curves.svg, resume, the epoch line and the progress display.
# A small driver (driver.c) is compiled against the runtime sources, so the
# suite does not depend on the rest of the build.
set -u
cd "$(dirname "$0")/../.."
. tests/harness.sh
# 10 here, 14 in check.py: csv, jsonl, tfevents (independent reader, corruption, TensorBoard's
# reader) and curves.svg of the fresh and the resumed run, and 4 about resuming
cases 24
PYTHON="${PYTHON:-/usr/bin/python3}"
B=build/tests/runlog
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir -p "$B"
if ! ${CC:-cc} -std=c11 -O1 -g -Wall -Wextra -Werror -D_GNU_SOURCE -Icompiler -Iruntime -Itarget/cpu -Itarget/cuda -Icli -I. \
     -o "$B/driver" tests/runlog/driver.c runtime/runlog.c runtime/tfevents.c runtime/plot.c \
     runtime/progress.c compiler/util.c compiler/error.c -lcjson -lm 2> "$T/cc.log"; then
  echo "FAIL build_driver: $(head -c 600 "$T/cc.log")"
  exit 0
fi
echo "PASS build_driver"
D="$B/driver"

# CRC-32C check value from RFC 3720 (iSCSI), B.4: "123456789" -> e3069283.
got=$("$D" crc)
[ "$got" = "e3069283" ] && echo "PASS crc32c_check_value" || echo "FAIL crc32c_check_value: got $got, expected e3069283"

# The seed notebook's epoch line, formatted by Python from the same numbers.
got=$("$D" line)
want=$("$PYTHON" -c 'print(f"Epoch: {200}/{200} Train Loss: {0.57251:.4f} Accuracy: {0.975:.4f} Time: {22.08944:.5f}  | Val Loss: {0.63364:.4f} Accuracy: {0.947515923566879:.4f}")')
[ "$got" = "$want" ] && echo "PASS epoch_line_format" || echo "FAIL epoch_line_format: got '$got', expected '$want'"
seed='Epoch: 200/200 Train Loss: 0.5725 Accuracy: 0.9750 Time: 22.08944  | Val Loss: 0.6336 Accuracy: 0.9475'
[ "$got" = "$seed" ] && echo "PASS epoch_line_matches_seed" || echo "FAIL epoch_line_matches_seed: got '$got', expected '$seed'"

# A fresh run, then a copy resumed after epoch 2 (epoch 3 is trained again).
printf 'network demo {\n  classes 10\n}\n' > "$T/model.net"
if ! "$D" run "$T/run" "$T/model.net" > "$T/out" 2> "$T/err"; then
  echo "FAIL fresh_run: $(cat "$T/err")"; exit 0
fi
[ "$(cat "$T/out")" = "$T/run/last.ckpt" ] && echo "PASS runlog_path" || echo "FAIL runlog_path: $(cat "$T/out")"
cp -r "$T/run" "$T/resumed"
sleep 1 # a later second: the resumed run's event file gets a later name, as in real use
if ! "$D" resume "$T/resumed" "$T/model.net" > /dev/null 2> "$T/err"; then
  echo "FAIL resumed_run: $(cat "$T/err")"; exit 0
fi
# check.py is plain Python; run it with an interpreter that has TensorBoard
# (`make setup` makes build/tensorboard-venv), so that TensorBoard's own
# EventAccumulator reads the files too.

CHECK_PY="$PYTHON"
if ! "$PYTHON" -c 'import tensorboard' 2>/dev/null && [ -x build/tensorboard-venv/bin/python ]; then
  CHECK_PY=build/tensorboard-venv/bin/python
fi
"$CHECK_PY" tests/runlog/check.py "$T/run" "$T/resumed" "$T/model.net"

# A fresh run over an old run directory replaces its logs: one event file, three rows.
sleep 1
"$D" run "$T/resumed" "$T/model.net" > /dev/null 2>&1
n=$(ls "$T/resumed" | grep -c '^events\.out\.tfevents\.')
rows=$(($(wc -l < "$T/resumed/metrics.csv") - 1))
[ "$n" -eq 1 ] && [ "$rows" -eq 3 ] && echo "PASS fresh_run_replaces_old_logs" \
  || echo "FAIL fresh_run_replaces_old_logs: $n event files, $rows csv rows"

# Progress: without a terminal, a line every LOG_EVERY steps; forced bar: redrawn in place, then cleared.
out=$(RXC_PROGRESS=lines "$D" progress 10 3)
n=$(printf '%s\n' "$out" | grep -c '^epoch 1/5 step [369]/10 loss 2.0000 .* img/s ETA [0-9:]* (run [0-9:]*)$')
[ "$n" -eq 3 ] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 4 ] && echo "PASS progress_lines" \
  || echo "FAIL progress_lines: expected 3 progress lines + done, got: $out"
out=$(RXC_PROGRESS=bar "$D" progress 10 3 | cat -v)
case "$out" in
  '^M^[[Kepoch 1/5 ['*'] 10/10 '*'^M^[[Kdone') echo "PASS progress_bar_redraws_in_place";;
  *) echo "FAIL progress_bar_redraws_in_place: output was $out";;
esac

# The same driver under AddressSanitizer and UBSan: a fresh run, a resume and the bar.
if ${CC:-cc} -std=c11 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined -D_GNU_SOURCE \
     -Icompiler -Iruntime -Itarget/cpu -Itarget/cuda -Icli -I. -o "$B/driver_asan" tests/runlog/driver.c runtime/runlog.c runtime/tfevents.c \
     runtime/plot.c runtime/progress.c compiler/util.c compiler/error.c -lcjson -lm 2> "$T/cc_asan.log"; then
  A="$B/driver_asan"
  if "$A" run "$T/asan" "$T/model.net" > /dev/null 2> "$T/asan.err" && cp -r "$T/asan" "$T/asan2" \
     && "$A" resume "$T/asan2" "$T/model.net" > /dev/null 2>> "$T/asan.err" \
     && RXC_PROGRESS=bar "$A" progress 7 2 > /dev/null 2>> "$T/asan.err" && [ ! -s "$T/asan.err" ]; then
    echo "PASS sanitizers_clean"
  else
    echo "FAIL sanitizers_clean: $(head -c 600 "$T/asan.err")"
  fi
else
  echo "SKIP sanitizers_clean: cannot build with -fsanitize=address,undefined: $(head -c 200 "$T/cc_asan.log")"
fi

# A run directory that cannot be created gives a message naming it.
out=$("$D" open /dev/null/run 2>&1); rc=$?
case "$out" in
  "error: cannot create directory /dev/null"*) [ $rc -eq 1 ] && echo "PASS bad_run_dir_error" || echo "FAIL bad_run_dir_error: exit $rc";;
  *) echo "FAIL bad_run_dir_error: got '$out'";;
esac
exit 0

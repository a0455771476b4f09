#!/usr/bin/env bash
# tests/ablate/train_check.sh TMPDIR — a real ablation of tests/ablate/micro.net
# (one ResNeXt block, ~1k parameters) on the demo digits, two epochs per
# variant: interruption and resume, the outputs, and their agreement with
# each variant's own run directory. Called by run.sh.
set -u
T=$1
PYTHON="${PYTHON:-/usr/bin/python3}"
RXC="${RXC:-$PWD/rxc}"
H=tests/ablate
DATA=build/test-ablate/digits
if [ ! -d "$DATA/val" ]; then
  mkdir -p build/test-ablate
  if ! "$RXC" demo --out "$DATA" --csv "$RXC_TEST_DATA/digits.csv.gz" > "$T/demo.log" 2>&1; then

    echo "FAIL ablation_trains: the demo data set could not be prepared: $(tail -c 300 "$T/demo.log")"
    exit 0

  fi
fi
OUT="$T/abl"
common=(--epochs 2 --out "$OUT" --set "root=\"$PWD/$DATA\"" --set device=cpu --set batch=32)

# 1. Interrupt the first variant during its second epoch (SIGTERM, as Ctrl-C):
#    the trainer saves a checkpoint, ablate stops with 130 and says how to resume.
"$RXC" ablate $H/micro.net --cardinality 1,2 "${common[@]}" > "$T/out0" 2> "$T/err0" &
pid=$!
#    The signal usually lands in the first variant's second epoch; on a fast
#    machine it may land in the second variant instead: either way exactly one
#    variant must be left unfinished with a checkpoint.
for _ in $(seq 1 3000); do
  grep -q '^Epoch: 1/2 ' "$T/err0" && break
  kill -0 $pid 2> /dev/null || break
  sleep 0.02
done
kill -TERM $pid 2> /dev/null
wait $pid; rc=$?
unfinished=0
for d in "$OUT"/c*_d*/; do
  [ -f "$d/last.safetensors" ] && [ ! -f "$d/ablation_done.json" ] && unfinished=$((unfinished + 1))
done
if [ $rc -eq 130 ] && grep -q "interrupted; run the same command again to resume" "$T/err0" \
   && [ "$unfinished" -eq 1 ]; then
  echo "PASS interrupt_exits_130_with_checkpoint"
else
  echo "FAIL interrupt_exits_130_with_checkpoint: exit $rc: $(tail -c 500 "$T/err0")"
fi

# 2. The same command again: the interrupted variant continues from its
#    checkpoint, the other one trains, and the outputs are complete.
"$RXC" ablate $H/micro.net --cardinality 1,2 "${common[@]}" > "$T/out1" 2> "$T/err1"; rc=$?
if [ $rc -eq 0 ] && grep -q "^== variant [12]x.*(resumed): .*--resume .*last.safetensors" "$T/err1"; then
  echo "PASS resume_continues_interrupted_variant"
else
  echo "FAIL resume_continues_interrupted_variant: exit $rc: $(tail -c 600 "$T/err1")"
  exit 0
fi
"$RXC" ablate $H/micro.net --cardinality 1,2 --dry-run --json > "$T/dry.json"
"$PYTHON" $H/check_outputs.py "$OUT" "$T/dry.json" 2 first

# 3. One more cardinality: the finished variants are skipped (their files
#    untouched), only the new one trains; --json carries the results.
sum_before=$(sha256sum "$OUT"/c1_*/metrics.jsonl "$OUT"/c1_*/last.safetensors | sha256sum)
"$RXC" ablate $H/micro.net --cardinality 1,2,4 --json "${common[@]}" > "$T/out2.json" 2> "$T/err2"; rc=$?
sum_after=$(sha256sum "$OUT"/c1_*/metrics.jsonl "$OUT"/c1_*/last.safetensors | sha256sum)
n_skipped=$(grep -c "already finished" "$T/err2")
n_trained=$(grep -c "^== variant" "$T/err2")
if [ $rc -eq 0 ] && [ "$n_skipped" -eq 2 ] && [ "$n_trained" -eq 1 ] && [ "$sum_before" = "$sum_after" ]; then
  echo "PASS resume_skips_finished_variants"
else
  echo "FAIL resume_skips_finished_variants: exit $rc, $n_skipped skipped, $n_trained trained, files changed: $([ "$sum_before" = "$sum_after" ] && echo no || echo yes); $(tail -c 400 "$T/err2")"
fi
"$RXC" ablate $H/micro.net --cardinality 1,2,4 --dry-run --json > "$T/dry3.json"
"$PYTHON" $H/check_outputs.py "$OUT" "$T/dry3.json" 2 extended "$T/out2.json"

# 4. More epochs continue a finished variant from its checkpoint.
"$RXC" ablate $H/micro.net --cardinality 1 --epochs 3 --out "$OUT" --set "root=\"$PWD/$DATA\"" --set device=cpu \
  --set batch=32 > /dev/null 2> "$T/err4"; rc=$?
rows=$(grep -c . "$OUT"/c1_*/metrics.jsonl)
if [ $rc -eq 0 ] && grep -q "^== variant 1x.*(resumed): .*--epochs 3 .*--resume" "$T/err4" && [ "$rows" -eq 3 ] \
   && grep -q '"epochs":3' "$OUT"/c1_*/ablation_done.json; then
  echo "PASS more_epochs_extend_finished_variant"
else
  echo "FAIL more_epochs_extend_finished_variant: exit $rc, $rows epochs in metrics.jsonl: $(tail -c 400 "$T/err4")"
fi

# 5. A record made with other settings (here the learning rate) is not reused.
"$RXC" ablate $H/micro.net --cardinality 4 "${common[@]}" --set lr=2e-3 > /dev/null 2> "$T/err5"; rc=$?
if [ $rc -eq 0 ] && grep -q "holds a run of another model, other settings or more epochs; training it anew" "$T/err5" \
   && grep -q "^== variant 4x" "$T/err5" && ! grep -q "(resumed)" "$T/err5"; then
  echo "PASS other_settings_train_anew"
else
  echo "FAIL other_settings_train_anew: exit $rc: $(tail -c 400 "$T/err5")"
fi

#!/usr/bin/env bash
# tests/ablate/train_check.sh TMPDIR — a real ablation of tests/ablate/micro.net
# (one ResNeXt block, ~1k parameters) on the demo digits, one epoch per
# variant: outputs, agreement with each variant's own run, and resume.
# Called by run.sh.
set -u
T=$1
PYTHON="${PYTHON:-/usr/bin/python3}"
RXC="${RXC:-$PWD/rxc}"
H=tests/ablate
DATA=build/test-ablate/digits
if [ ! -d "$DATA/val" ]; then
  mkdir -p build/test-ablate
  if ! "$RXC" demo --out "$DATA" > "$T/demo.log" 2>&1; then
    echo "SKIP ablation_trains: the demo data set could not be prepared: $(tail -c 300 "$T/demo.log")"
    exit 0
  fi
fi
OUT="$T/abl"
common=(--epochs 1 --out "$OUT" --set "root=\"$PWD/$DATA\"" --set device=cpu)

"$RXC" ablate $H/micro.net --cardinality 1,2 "${common[@]}" > "$T/out1" 2> "$T/err1"; rc=$?
if [ $rc -ne 0 ]; then
  echo "FAIL ablation_trains: exit $rc: $(tail -c 600 "$T/err1")"
  exit 0
fi
echo "PASS ablation_trains"
"$RXC" ablate $H/micro.net --cardinality 1,2 --dry-run --json > "$T/dry.json"
"$PYTHON" $H/check_outputs.py "$OUT" "$T/dry.json" 1 first

# Rerun with one more cardinality: the finished variants are skipped (their
# files untouched), only the new one trains.
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
"$PYTHON" $H/check_outputs.py "$OUT" "$T/dry3.json" 1 resumed "$T/out2.json"

# A variant stopped after its checkpoint but before its record: the rerun
# continues it from last.safetensors instead of starting over.
rm -f "$OUT"/c4_*/ablation_done.json
"$RXC" ablate $H/micro.net --cardinality 1,2,4 "${common[@]}" > /dev/null 2> "$T/err3"; rc=$?
if [ $rc -eq 0 ] && grep -q "^== variant 4x.*(resumed): .*--resume .*last.safetensors" "$T/err3" && [ -f "$OUT"/c4_*/ablation_done.json ]; then
  echo "PASS resume_continues_interrupted_variant"
else
  echo "FAIL resume_continues_interrupted_variant: exit $rc: $(tail -c 400 "$T/err3")"
fi

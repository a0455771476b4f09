#!/usr/bin/env bash
# tests/ablate — `rxc ablate`: the width search on its own (width_search_test.c:
# against an exhaustive search over closed-form counts, and Table 2); derived
# widths at equal complexity (checked against independent counts: a closed
# formula for the seed layout, PyTorch's torchvision ResNet for torchvision's
# layout, and the paper's Table 2),
# --keep width, the table, argument errors, and a small real ablation with
# its outputs and resume.
set -u
cd "$(dirname "$0")/../.."
. tests/harness.sh
# width_search_test.c: 12; check_json.py: 5 per complexity run (seed, tv), 4 for --keep width; tv_widths_are_table2,
# table_text, asan_dry_run, 12 bad_args_*, help; train_check.sh: 5 of its own and
# check_outputs.py's 3 (first) and 4 (extended)
cases $((12 + 5 + 4 + 5 + 1 + 1 + 1 + 12 + 1 + 5 + 3 + 4))
PYTHON="${PYTHON:-/usr/bin/python3}"
RXC="${RXC:-$PWD/rxc}"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
H=tests/ablate
CARDS=1,2,4,8,32

# 0. the pure width search (compiler/width_search.c), without rxc
mkdir -p build/tests/ablate
if ${CC:-cc} -std=c11 -O1 -g -Wall -Wextra -Werror -D_GNU_SOURCE -Icompiler -Itests $H/width_search_test.c \
     compiler/width_search.c -o build/tests/ablate/width_search_test -lm 2> "$T/ws_build.log"; then
  build/tests/ablate/width_search_test
else
  echo "FAIL build_width_search_test: $(head -c 1000 "$T/ws_build.log")"
fi

# 1. seed layout, equal complexity
if "$RXC" ablate models/resnext50_32x4d.net --cardinality $CARDS --dry-run --json > "$T/seed.json" 2> "$T/err"; then
  "$PYTHON" $H/check_json.py seed "$T/seed.json" $CARDS 32 4 10 complexity
else
  echo "FAIL seed_complexity_dry_run: exit $?: $(head -c 400 "$T/err")"
fi

# 2. seed layout, --keep width
if "$RXC" ablate models/resnext50_32x4d.net --cardinality $CARDS --keep width --dry-run --json > "$T/w.json" 2> "$T/err"; then
  "$PYTHON" $H/check_json.py seed "$T/w.json" $CARDS 32 4 10 width
else
  echo "FAIL seed_width_dry_run: exit $?: $(head -c 400 "$T/err")"
fi

# 3. torchvision layout at 1000 classes: the widths of the paper's Table 2
#    (1x64d, 2x40d, 4x24d, 8x14d, 32x4d), and counts equal to torchvision's.
if "$RXC" ablate models/resnext50_32x4d_tv.net --set classes=1000 --cardinality $CARDS --dry-run --json > "$T/tv.json" 2> "$T/err"; then
  got=$("$PYTHON" -c 'import json,sys; print(",".join(str(r["width"]) for r in json.load(open(sys.argv[1]))))' "$T/tv.json")
  [ "$got" = "64,40,24,14,4" ] && echo "PASS tv_widths_are_table2" || echo "FAIL tv_widths_are_table2: got $got, expected 64,40,24,14,4"
  "$PYTHON" $H/check_json.py tv "$T/tv.json" $CARDS 32 4 1000 complexity
else
  echo "FAIL tv_dry_run: exit $?: $(head -c 400 "$T/err")"
fi

# 4. the terminal table
if "$RXC" ablate models/resnext50_32x4d.net --cardinality 1,32 --dry-run > "$T/table" 2> "$T/err"; then
  if grep -q '^ *C  *d  *C\*d  *params  *MACs' "$T/table" && grep -Eq '^ +1 +64 +64 +23,528,522 +4,125,691,904 ' "$T/table" \
     && grep -Eq '^ +32 +4 +128 +23,000,394 +4,305,522,688 +1\.0000 +1\.0000' "$T/table"; then
    echo "PASS table_text"
  else
    echo "FAIL table_text: $(cat "$T/table")"
  fi
else
  echo "FAIL table_text: exit $?: $(head -c 400 "$T/err")"
fi

# 4b. the derivation and the table under AddressSanitizer/UBSan (make asan), when built
RXC_ASAN="${RXC_ASAN:-$PWD/build/asan/rxc}"
if [ -x "$RXC_ASAN" ]; then
  if "$RXC_ASAN" ablate models/resnext50_32x4d.net --cardinality 1,2,4,8,32 --dry-run --json > "$T/asan.json" 2> "$T/asan.err" \
     && cmp -s "$T/asan.json" "$T/seed.json" && [ ! -s "$T/asan.err" ]; then
    echo "PASS asan_dry_run"
  else
    echo "FAIL asan_dry_run: $(head -c 600 "$T/asan.err")"
  fi
else
  skip asan_dry_run "no $RXC_ASAN (make asan)"

fi

# 5. bad arguments: exit 2 and a message that names the problem
printf 'network plain {\n  input 3x8x8\n  classes 2\n  return linear(flatten(global_avgpool(conv(input, 4, 3))), classes)\n}\n' > "$T/plain.net"
bad() { # name, expected message fragment, args...
  local name=$1 want=$2; shift 2
  "$RXC" ablate "$@" > "$T/out" 2> "$T/err"; local rc=$?
  if [ $rc -eq 2 ] && grep -qF -- "$want" "$T/err"; then echo "PASS bad_args_$name"
  else echo "FAIL bad_args_$name: exit $rc, stderr: $(head -c 300 "$T/err")"; fi
}
bad no_cardinality "--cardinality LIST is required" models/resnext50_32x4d.net --dry-run
bad zero "'0' is not a positive integer" models/resnext50_32x4d.net --cardinality 1,0 --dry-run
bad word "'x' is not a positive integer" models/resnext50_32x4d.net --cardinality x --dry-run
bad twice "2 is given twice" models/resnext50_32x4d.net --cardinality 2,2 --dry-run
bad empty "no values" models/resnext50_32x4d.net --cardinality , --dry-run
bad keep "--keep must be 'complexity' or 'width'" models/resnext50_32x4d.net --cardinality 2 --keep depth --dry-run
bad epochs "--epochs must be a positive integer" models/resnext50_32x4d.net --cardinality 2 --epochs -3 --dry-run
bad option "unknown option '--cardnality'" models/resnext50_32x4d.net --cardnality 2 --dry-run
bad no_file "no model file given" --cardinality 2 --dry-run
bad two_files "one model file only" models/resnext50_32x4d.net models/resnet50.net --cardinality 2 --dry-run
bad missing_value "--cardinality needs a value" models/resnext50_32x4d.net --cardinality
bad no_settings "no integer \`cardinality\` and \`width\` settings" "$T/plain.net" --cardinality 2 --dry-run
"$RXC" ablate --help > "$T/out" 2>&1 && grep -q -- "--keep complexity" "$T/out" && echo "PASS help" || echo "FAIL help: $(head -c 300 "$T/out")"

# 6. training: a real, small ablation (train_check.sh)
bash $H/train_check.sh "$T"
exit 0

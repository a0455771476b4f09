#!/usr/bin/env bash
# tests/frontend/run.sh — the language front end: malformed files give their
# exact first diagnostic (file:line:col: error: message), the source line and
# a caret, and exit status 2, also under ASan+UBSan; every model and example
# checks; the acceptance table (params, MACs) and torchvision's state_dict
# names and shapes (PyTorch as the reference); --set; the recipe as parsed;
# summary/graph output; error recovery and the error cap.
set -u
cd "$(dirname "$0")/../.."
RXC=${RXC:-$PWD/rxc}
RXC_ASAN=${RXC_ASAN:-$PWD/build/asan/rxc}
PYTHON=${PYTHON:-/usr/bin/python3}
T=tests/frontend
D=$T/bad
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. tests/harness.sh
# one case per malformed file (bad/EXPECTED) and per fuzz/crashes input, bad_files_listed,
# asan_bad_files and asan_models, `check` of every model, example and good/ file, and 25 more
cases $(( $(grep -c . "$D/EXPECTED") + 1 + 2 + $(count_files fuzz/crashes/*) \
          + $(count_files models/*.net examples/*.net $T/good/*.net) + 25 ))

if [ ! -x "$RXC" ]; then
  fail frontend "$RXC is not built"
  exit 1
fi

# ---- malformed files --------------------------------------------------------
# bad/EXPECTED: "file<TAB>first line", with $D standing for tests/frontend/bad.
# A file's optional "# args: ..." line gives extra command-line arguments, and
# its optional "# note: ..." line the note that must follow the error.
check_bad() { # binary name expected -> sets $why, returns 0/1
  local bin=$1 f=$2 expected=$3 args out rc first second third
  args=$(sed -n 's/^# args: //p' "$D/$f")
  # shellcheck disable=SC2086
  out=$("$bin" check "$D/$f" $args 2>&1)
  rc=$?
  first=$(printf '%s\n' "$out" | sed -n 1p)
  second=$(printf '%s\n' "$out" | sed -n 2p)
  third=$(printf '%s\n' "$out" | sed -n 3p)
  if [ "$rc" -ne 2 ]; then why="exit status $rc, expected 2 (output: $first)"; return 1; fi
  if printf '%s\n' "$out" | grep -q -E 'AddressSanitizer|runtime error:|LeakSanitizer'; then
    why="sanitizer report: $(printf '%s\n' "$out" | grep -m1 -E 'AddressSanitizer|runtime error:|LeakSanitizer')"; return 1
  fi
  if [ "$first" != "$expected" ]; then why="first line '$first', expected '$expected'"; return 1; fi
  # The source line and the caret under the column.
  local loc file line col src
  loc=${first%%: error:*}
  col=${loc##*:}; loc=${loc%:*}
  line=${loc##*:}; file=${loc%:*}
  if [ "$file" = "<command line>" ]; then
    src="--set ${args#--set }"
  else
    src=$(sed -n "${line}p" "$file" | tr -d '\r')
  fi
  if [ "$second" != "    $src" ]; then why="source line '$second', expected '    $src'"; return 1; fi
  local before=${third%%^*}
  if [ "$before" = "$third" ] || [ $(( ${#before} - 4 )) -ne $(( col - 1 )) ]; then
    why="caret line '$third' does not point at column $col"; return 1
  fi
  # A file's optional "# note: ..." line: the note that must follow the error.
  local note fourth
  note=$(sed -n 's/^# note: //p' "$D/$f")
  fourth=$(printf '%s\n' "$out" | sed -n 4p)
  if [ -n "$note" ] && [ "${fourth#*: note: }" != "$note" ]; then
    why="fourth line '$fourth', expected a note '$note'"; return 1
  fi
  return 0
}

n_bad=0
while IFS=$'\t' read -r f expected; do
  [ -z "$f" ] && continue
  n_bad=$((n_bad + 1))
  expected=${expected//\$D/$D}
  if check_bad "$RXC" "$f" "$expected"; then pass "bad/${f%.net}"; else fail "bad/${f%.net}" "$why"; fi
done < "$D/EXPECTED"

# Every malformed file is listed, and there are at least 40.
listed=$(cut -f1 "$D/EXPECTED" | sort)
present=$(cd "$D" && ls -- *.net | sort)
if [ "$listed" != "$present" ]; then
  fail bad_files_listed "bad/EXPECTED and the .net files in bad/ differ: $(diff <(echo "$listed") <(echo "$present") | grep '^[<>]' | tr '\n' ' ')"
elif [ "$n_bad" -lt 40 ]; then
  fail bad_files_listed "only $n_bad malformed files (want >= 40)"
else
  pass "bad_files_listed ($n_bad files)"
fi

# The same files under AddressSanitizer + UBSan.
if [ -x "$RXC_ASAN" ]; then
  bad_asan=""
  while IFS=$'\t' read -r f expected; do
    [ -z "$f" ] && continue
    expected=${expected//\$D/$D}
    check_bad "$RXC_ASAN" "$f" "$expected" || bad_asan="$bad_asan $f ($why)"
  done < "$D/EXPECTED"
  if [ -z "$bad_asan" ]; then pass asan_bad_files; else fail asan_bad_files "$bad_asan"; fi
  for m in models/*.net examples/*.net $T/good/*.net; do
    out=$("$RXC_ASAN" summary "$m" --json 2>&1 >/dev/null); rc=$?
    if [ $rc -ne 0 ] || [ -n "$out" ]; then fail "asan_summary/$(basename "$m" .net)" "status $rc: $(echo "$out" | head -3)"; fi
  done
  pass asan_models
else
  skip_each "$RXC_ASAN not built (make asan)" asan_bad_files asan_models
fi

# Inputs the fuzzer found (fuzz/crashes/): no sanitizer report, status 0 or 2.
if [ ! -x "$RXC_ASAN" ]; then
  for c in fuzz/crashes/*; do [ -f "$c" ] && skip "fuzz_regression/$(basename "$c")" "$RXC_ASAN not built (make asan)"; done
else
  for c in fuzz/crashes/*; do
    [ -f "$c" ] || continue
    out=$("$RXC_ASAN" check "$c" 2>&1); rc=$?
    if printf '%s\n' "$out" | grep -q -E 'AddressSanitizer|runtime error:|LeakSanitizer'; then
      fail "fuzz_regression/$(basename "$c")" "$(printf '%s\n' "$out" | grep -m1 -E 'ERROR: AddressSanitizer|runtime error:|LeakSanitizer') at $(printf '%s\n' "$out" | grep -m1 -E '#0 ' | sed 's/.* in //')"
    elif [ $rc -ne 0 ] && [ $rc -ne 2 ]; then
      fail "fuzz_regression/$(basename "$c")" "status $rc"
    else
      pass "fuzz_regression/$(basename "$c")"
    fi
  done
fi

# ---- a setting written as a call reads as its `key value` form -------------
# good/settings_as_calls.net against the same train section as key-value lines: the
# recipe `summary --json` prints must be equal, and hold the values written
calls=$T/good/settings_as_calls.net
sed -e 's/^    ema(decay=0.9998, every=4)$/    ema 0.9998\n    ema_every 4/' -e 's/^    mixup(alpha=0.2)$/    mixup 0.2/' \
    -e 's/^    cutmix(alpha=1.0)$/    cutmix 1.0/' "$calls" > "$TMP/settings_as_lines.net"
recipe_of() { "$RXC" summary "$1" --json | "$PYTHON" -c 'import json, sys; print(json.dumps(json.load(sys.stdin)["recipe"], sort_keys=True))'; }
a=$(recipe_of "$calls"); b=$(recipe_of "$TMP/settings_as_lines.net")
if [ -n "$a" ] && [ "$a" = "$b" ] && ! grep -q '(' <(grep -E '^    (ema|mixup|cutmix)' "$TMP/settings_as_lines.net") &&
   printf '%s' "$a" | grep -q '"ema": {"decay": 0.9998, "every": 4}' && printf '%s' "$a" | grep -q '"mixup": 0.2'; then
  pass "settings_as_calls_equal_key_value (ema decay 0.9998 every 4, mixup 0.2, cutmix 1)"
else
  fail settings_as_calls_equal_key_value "calls: ${a:0:300} | lines: ${b:0:300}"
fi

# ---- several errors in one run, and the cap --------------------------------
out=$("$RXC" check $T/multi/six_errors.net 2>&1); rc=$?
n=$(printf '%s\n' "$out" | grep -c ': error: ')
want="$T/multi/six_errors.net:4:24: error: conv has no argument 'strid'; did you mean 'stride'?"
if [ $rc -eq 2 ] && [ "$n" -eq 6 ] && [ "$(printf '%s\n' "$out" | head -1)" = "$want" ] &&
   printf '%s\n' "$out" | grep -q "six_errors.net:8:25: error: epochs must be between 1 and 1000000, not 0"; then
  pass several_errors_per_run
else
  fail several_errors_per_run "status $rc, $n errors: $(printf '%s\n' "$out" | grep ': error: ' | tr '\n' '|')"
fi

{ echo 'network n {'; echo '    input 3x8x8'; echo '    classes 2'
  for i in $(seq 1 30); do echo "    x$i = conv(input, 4, 3, strde=1)"; done
  echo '    return linear(flatten(global_avgpool(input)), classes)'; echo '}'; } > "$TMP/many.net"
out=$("$RXC" check "$TMP/many.net" 2>&1); rc=$?
n=$(printf '%s\n' "$out" | grep -c ': error: ')
if [ $rc -eq 2 ] && [ "$n" -eq 20 ] && printf '%s\n' "$out" | grep -q 'too many errors'; then
  pass error_cap_20
else
  fail error_cap_20 "status $rc, $n errors shown"
fi

# ---- good files ---------------------------------------------------------------
for m in models/*.net examples/*.net $T/good/*.net; do
  out=$("$RXC" check "$m" 2>&1); rc=$?
  if [ $rc -eq 0 ]; then pass "check/$(basename "$m" .net)"; else fail "check/$(basename "$m" .net)" "status $rc: $(echo "$out" | head -1)"; fi
done

# ---- acceptance table ---------------------------------------------------------
acc() { # name file expected_params expected_macs [sets...]
  local name=$1 file=$2 p=$3 m=$4; shift 4
  if [ ! -f "$file" ]; then fail "acceptance/$name" "$file missing"; return; fi
  "$RXC" summary "$file" --json "$@" > "$TMP/$name.json" 2> "$TMP/$name.err"
  if "$PYTHON" - "$TMP/$name.json" "$p" "$m" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
p, m = int(sys.argv[2]), int(sys.argv[3])
assert isinstance(d["layers"], list) and d["layers"], "no layers"
assert d["params"] == p, "params %d, expected %d" % (d["params"], p)
assert d["macs"] == m, "macs %d, expected %d" % (d["macs"], m)
# The per-layer rows add up to the totals.
assert sum(l["params"] for l in d["layers"]) == p, "layer params do not sum to the total"
assert sum(l["macs"] for l in d["layers"]) == m, "layer MACs do not sum to the total"
EOF
  then pass "acceptance/$name"; else fail "acceptance/$name" "$(tail -1 "$TMP/$name.err" 2>/dev/null)"; fi
}
acc resnext50_32x4d models/resnext50_32x4d.net 23000394 4305522688 2>&1
acc resnext50_32x4d_tv models/resnext50_32x4d_tv.net 25028904 4230479872 --set classes=1000 2>&1
acc resnet50 models/resnet50.net 25557032 4089184256 --set classes=1000 2>&1
acc resnext101_32x8d models/resnext101_32x8d.net 88791336 16414015488 --set classes=1000 2>&1
acc resnext50_32x4d_rsb examples/resnext50_32x4d_rsb.net 23000394 4305522688 2>&1  # the seed's counts: drop_path has no parameters
acc resnext50_32x4d_rsb_a3 examples/resnext50_32x4d_rsb_a3.net 23000394 2196705280 2>&1  # the seed's parameters, at 160x160

# The three forms of Figure 3 have equal parameter and MAC counts.
for f in fig3a_paths fig3b_concat fig3c_grouped; do "$RXC" summary examples/$f.net --json > "$TMP/$f.json" 2>/dev/null; done
if "$PYTHON" - "$TMP"/fig3a_paths.json "$TMP"/fig3b_concat.json "$TMP"/fig3c_grouped.json <<'EOF'
import json, sys
ds = [json.load(open(p)) for p in sys.argv[1:]]
assert len({(d["params"], d["macs"]) for d in ds}) == 1, [(d["params"], d["macs"]) for d in ds]
assert ds[0]["params"] > 0
EOF
then pass figure3_forms_equal; else fail figure3_forms_equal "params/MACs differ"; fi

# ---- torchvision's state_dict names and shapes --------------------------------
tv_names() { # name file torchvision-constructor [sets...]
  local name=$1 file=$2 ctor=$3; shift 3
  "$RXC" summary "$file" --json "$@" > "$TMP/tv_$name.json" 2>/dev/null
  if err=$("$PYTHON" - "$TMP/tv_$name.json" "$ctor" 2>&1 <<'EOF'
import json, sys
import torchvision
from torchvision.models.resnet import ResNet, Bottleneck
d = json.load(open(sys.argv[1]))
model = eval(sys.argv[2])
ref = {k: list(v.shape) for k, v in model.state_dict().items()}
got = {p["name"]: p["shape"] for p in d["parameters"]}
missing = sorted(set(ref) - set(got))
extra = sorted(set(got) - set(ref))
assert not missing and not extra, "missing %s extra %s" % (missing[:5], extra[:5])
bad = [k for k in ref if ref[k] != got[k]]
assert not bad, "shape differs: %s %s vs %s" % (bad[0], got[bad[0]], ref[bad[0]])
n = sum(v.numel() for v in model.parameters())
assert d["params"] == n, "params %d vs torch %d" % (d["params"], n)
EOF
); then pass "torchvision_names/$name"; else fail "torchvision_names/$name" "$(echo "$err" | tail -1)"; fi
}
tv_names resnext50_32x4d_tv models/resnext50_32x4d_tv.net "torchvision.models.resnext50_32x4d()" --set classes=1000
tv_names resnet50 models/resnet50.net "torchvision.models.resnet50()" --set classes=1000
tv_names resnext101_32x8d models/resnext101_32x8d.net "torchvision.models.resnext101_32x8d()" --set classes=1000
# Changing C or d is changing one number: --set against torchvision's constructor.
tv_names tv_c8_d14 models/resnext50_32x4d_tv.net "ResNet(Bottleneck, [3, 4, 6, 3], groups=8, width_per_group=14, num_classes=7)" \
  --set classes=7 --set cardinality=8 --set width=14

# ---- the resolved text (check --print) means the same as the file -------------
# Includes spliced in and overrides applied: the printed text, checked again,
# gives the same layers, parameter names and shapes, totals and recipe.
rt_bad=""
for m in models/*.net examples/*.net $T/good/*.net; do
  b=$(basename "$m" .net)
  sets=(--set classes=7)
  grep -q "^ *cardinality " "$m" && sets+=(--set cardinality=4)
  "$RXC" check "$m" --print "${sets[@]}" > "$TMP/rt_$b.net" 2>/dev/null &&
  "$RXC" summary "$m" --json "${sets[@]}" > "$TMP/rt_a_$b.json" 2>/dev/null &&
  "$RXC" summary "$TMP/rt_$b.net" --json > "$TMP/rt_b_$b.json" 2>/dev/null &&
  "$PYTHON" - "$TMP/rt_a_$b.json" "$TMP/rt_b_$b.json" <<'EOF2' || rt_bad="$rt_bad $b"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
for k in ("params", "macs", "layers", "parameters", "recipe", "classes", "input", "output"):
    assert a[k] == b[k], k
assert a["classes"] == 7
EOF2
done
if [ -z "$rt_bad" ]; then pass resolved_text_round_trip; else fail resolved_text_round_trip "differs for:$rt_bad"; fi

# ---- the syntax test file: names, counts and recipe, computed by hand ----------
"$RXC" summary $T/good/syntax.net --json > "$TMP/syntax.json" 2>"$TMP/syntax.err"
if err=$("$PYTHON" - "$TMP/syntax.json" 2>&1 <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
names = [p["name"] for p in d["parameters"]]
want = ["stem.weight", "stage1.conv1.weight", "stage2.conv1.weight", "conv1.weight",
        "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked",
        "conv2.weight", "conv2.bias", "head.weight", "head.bias"]
assert sorted(names) == sorted(want), names
# stem 3*8*9; stage1 8*8*9; stage2 8*16*1; unit conv 16*16*9 + bn 32; 1x1 conv 16*16+16; head 32*5+5
assert d["params"] == 216 + 576 + 128 + 2304 + 32 + 272 + 165, d["params"]
assert d["macs"] == (216 + 576 + 128 + 2304 + 256) * 256 + 160, d["macs"]
assert d["input"] == [3, 16, 16] and d["classes"] == 5 and d["output"] == [5]
r = d["recipe"]
assert r["data"] == {"root": "data/x", "layout": "cifar10", "train_split": "train", "val_split": "val",
                     "cache": "jpeg", "workers": 2, "drop_last": True}, r["data"]
assert r["augment_train"].startswith("random_resized_crop([16, 16], scale=[0.5, 1]") and "hflip(p=0.25)" in r["augment_train"]
assert "autoaugment(cifar10, fill=0)" in r["augment_train"]
assert r["augment_val"].startswith("resize([20, 18]) -> center_crop([16, 16])")
assert (r["epochs"], r["batch"], r["accum"], r["seed"], r["deterministic"]) == (7, 16, 2, 42, False)
o = r["optimizer"]
assert (o["kind"], o["lr"], o["momentum"], o["nesterov"], o["weight_decay"], o["no_decay_bn_bias"]) == ("sgd", 0.1, 0.9, True, 5e-4, True), o
s = r["schedule"]
assert (s["kind"], s["milestones"], s["gamma"], s["warmup_epochs"], s["warmup_start"]) == ("multistep", [3, 5], 0.5, 2, 0.1), s
assert (r["label_smoothing"], r["device"], r["precision"], r["run_dir"]) == (0.05, "cpu", "bf16", "runs/syntax")
EOF
); then pass syntax_file; else fail syntax_file "$(echo "$err" | tail -1) $(head -1 "$TMP/syntax.err")"; fi

# ---- the seed's recipe, and --set on recipe keys ------------------------------
"$RXC" summary models/resnext50_32x4d.net --json > "$TMP/seed.json" 2>/dev/null
"$RXC" summary models/resnext50_32x4d.net --json --set epochs=3 --set lr=0.01 --set batch=8 \
  --set root='"data/digits"' --set label_smoothing=0 --set device=cpu --set classes=4 > "$TMP/seed_set.json" 2>"$TMP/seed_set.err"
if err=$("$PYTHON" - "$TMP/seed.json" "$TMP/seed_set.json" 2>&1 <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))["recipe"]
assert (d["epochs"], d["batch"], d["label_smoothing"]) == (200, 64, 0.1), d
assert d["optimizer"]["kind"] == "adamw" and d["optimizer"]["lr"] == 1e-3 and d["optimizer"]["weight_decay"] == 0
assert d["schedule"]["kind"] == "cosine" and abs(d["schedule"]["eta_min"] - 1e-5) < 1e-12 and not d["schedule"]["per_step"]
assert d["augment_train"] == ("random_resize([256, 296, 384]) -> random_crop([224, 224], padding=0) -> hflip(p=0.5)"
                              " -> autoaugment(imagenet, fill=128) -> normalize(mean=[0.4625, 0.458, 0.4295], std=[0.2452, 0.239, 0.2469])"), d["augment_train"]
assert d["augment_val"].startswith("resize(256) -> center_crop([224, 224]) -> normalize("), d["augment_val"]
assert d["data"]["cache"] == "decoded"
full = json.load(open(sys.argv[2]))
s = full["recipe"]
assert (s["epochs"], s["batch"], s["optimizer"]["lr"], s["label_smoothing"], s["device"]) == (3, 8, 0.01, 0, "cpu"), s
assert s["data"]["root"] == "data/digits" and s["optimizer"]["kind"] == "adamw" and s["optimizer"]["weight_decay"] == 0
assert full["classes"] == 4 and full["output"] == [4]
EOF
); then pass seed_recipe_and_set; else fail seed_recipe_and_set "$(echo "$err" | tail -1) $(head -1 "$TMP/seed_set.err")"; fi

# ---- summary table, graph, help ---------------------------------------------
out=$("$RXC" summary models/resnext50_32x4d.net 2>&1)
if printf '%s\n' "$out" | grep -q "^total: 23,000,394 trainable parameters, 4,305,522,688 multiply-accumulates per image" &&
   printf '%s\n' "$out" | grep -q "^layer  *op  *output (CxHxW)  *params  *MACs"; then
  pass summary_table
else
  fail summary_table "$(printf '%s\n' "$out" | grep total)"
fi

"$RXC" graph models/tiny_resnext.net --dot > "$TMP/g.dot" 2>"$TMP/g.err"
"$RXC" summary models/tiny_resnext.net --json > "$TMP/tiny.json" 2>/dev/null
if err=$("$PYTHON" - "$TMP/g.dot" "$TMP/tiny.json" 2>&1 <<'EOF'
import json, re, sys
text = open(sys.argv[1]).read()
d = json.load(open(sys.argv[2]))
assert text.startswith("digraph ") and text.rstrip().endswith("}")
nodes = set(re.findall(r"^\s*n(\d+) \[label=", text, re.M))
edges = re.findall(r"^\s*n(\d+) -> n(\d+);", text, re.M)
assert len(nodes) == len(d["layers"]), (len(nodes), len(d["layers"]))
assert all(a in nodes and b in nodes and int(a) < int(b) for a, b in edges), "dangling or backward edge"
# every layer except the input has an incoming edge
assert len({b for a, b in edges}) == len(nodes) - 1
EOF
); then pass graph_dot; else fail graph_dot "$(echo "$err" | tail -1)"; fi

# augment_parse, through `rxc transform` (the pipeline syntax of `augment train:`).
out=$("$RXC" transform "random_crop(32) -> hflp" /dev/null "$TMP/x.png" 2>&1); rc=$?
if printf '%s\n' "$out" | grep -q "not implemented"; then
  skip augment_parse_errors "rxc transform not in this build"
elif [ $rc -eq 2 ] && printf '%s\n' "$out" | grep -q "pipeline:1:20: error: unknown augmentation op 'hflp'; did you mean 'hflip'?"; then
  pass augment_parse_errors
else
  fail augment_parse_errors "status $rc: $out"
fi

for c in check summary graph; do
  if "$RXC" $c --help 2>&1 | grep -q "^usage: rxc $c"; then pass "help/$c"; else fail "help/$c" "no usage line"; fi
done
"$RXC" check 2>/dev/null; rc=$?
if [ $rc -eq 2 ]; then pass check_without_file; else fail check_without_file "status $rc"; fi
"$RXC" check "$TMP/does_not_exist.net" 2>/dev/null; rc=$?
if [ $rc -eq 1 ]; then pass check_unreadable_file; else fail check_unreadable_file "status $rc"; fi
exit 0

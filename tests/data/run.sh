#!/usr/bin/env bash
# tests/data — the data pipeline (runtime/data) against PIL/torchvision:
# decoding, resize/crops, every AutoAugment op with fixed magnitude and sign,
# the policy table and the frequencies of its random choices, the loader
# (bad-input corpus, determinism across threads and cache modes, shuffle,
# drop_last, val batches vs torchvision, CIFAR binary) and the demo set.
# Tolerances are printed with each result (levels 0-255 unless stated).
#
# Photographs: china.jpg and flower.jpg, and the digits of `rxc demo --csv`,
# from Debian's python3-sklearn, which `make setup` (scripts/setup.sh)
# unpacks into build/deps/sklearn. Without them (a FAIL in strict mode) the
# photographs are synthesized with PIL and the digits cases are skipped.
# The ImageNet AutoAugment table is checked against the seed's document,
# copied as tests/data/seed_autoaugment.md.
set -u
cd "$(dirname "$0")/../.."
. tests/harness.sh
# build_tools, debian_photos; 213 image comparisons (compare.txt below: 10 decodes, 3 DCT-scaled
# decodes, 12 regions, 6 resizes, 3 windows, 4 torchvision resizes, 4 center crops, 3 DCT-scaled
# resizes, 168 AutoAugment ops); the AutoAugment table and magnitudes, 3 policies' frequencies,
# the pipeline's random choices; 6 + 3 bad inputs, cmd_transform_bad_files, the mutated JPEGs,
# 2 loader errors; 8 loader cases; 2 class-name cases; 3 CIFAR cases; 4 demo-set cases, 3 transforms;
# aug_ref.py: 8 random_erasing cases; RandAugment/TrivialAugmentWide: 2 tables, 2 x 13 ops, 2 choice
# distributions, 2 replayed pipelines
cases $((2 + 213 + 2 + 3 + 1 + 6 + 3 + 1 + 1 + 2 + 8 + 2 + 3 + 4 + 3 + 8 + 32))
PYTHON="${PYTHON:-/usr/bin/python3}"
RXC="${RXC:-$PWD/rxc}"
RXC_ASAN="${RXC_ASAN:-$PWD/build/asan/rxc}"
W=build/tests-data
mkdir -p "$W/out"
CHECK="$PYTHON tests/data/check.py"

SRCS="runtime/data/image.c runtime/data/jpeg.c runtime/data/png.c runtime/data/transforms.c runtime/data/autoaugment.c runtime/data/randaugment.c runtime/data/dataset.c runtime/data/loader.c compiler/util.c compiler/error.c"
FLAGS="-D_GNU_SOURCE -Icompiler -Iruntime -Itarget/cpu -Itarget/cuda -Icli -I. -std=c11 -g -Wall -Wextra"
LIBS="-ljpeg -lpng -lm -lpthread"
if ! cc $FLAGS -O2 -o $W/tf_tool tests/data/tf_tool.c $SRCS $LIBS 2>$W/build.log ||
   ! cc $FLAGS -O2 -o $W/loader_tool tests/data/loader_tool.c $SRCS $LIBS 2>>$W/build.log ||
   ! cc $FLAGS -O2 -o $W/aug_tool tests/data/aug_tool.c $SRCS $LIBS 2>>$W/build.log; then
  fail build_tools "$(head -5 $W/build.log)"
  exit 1
fi
pass build_tools
TF=$W/tf_tool
LT=$W/loader_tool

# ---- photographs ----
PH=$W/photos
rm -rf $PH
mkdir -p $PH
CSV=""
SK=$RXC_TEST_DATA
if [ -f $SK/china.jpg ] && [ -f $SK/flower.jpg ] && [ -f $SK/digits.csv.gz ]; then
  cp $SK/china.jpg $SK/flower.jpg $SK/digits.csv.gz $PH/
  CSV=$PH/digits.csv.gz
  pass debian_photos "china.jpg, flower.jpg and digits.csv.gz from $SK"
else
  skip debian_photos "no china.jpg, flower.jpg and digits.csv.gz in $SK (make setup); using synthesized photographs"
  $CHECK photos $PH
fi
$CHECK inputs $PH $PH/china.jpg $PH/flower.jpg

# ---- decode, resize, crops, AutoAugment ops: outputs, then one comparison pass ----
L=$W/compare.txt
: > $L
o=$W/out
for f in china.jpg flower.jpg gray.jpg cmyk.jpg sub420.jpg sub422.jpg prog420.jpg rgba.png palette.png gray.png; do
  $TF decode $PH/$f $o/dec_$f.png && echo "decode_${f%.*}_${f##*.} decode $PH/$f $o/dec_$f.png" >> $L
done
for s in "200 320 213" "100 160 106" "50 80 53"; do
  set -- $s
  $TF decode $PH/china.jpg $o/draft_$1.png $1 && echo "decode_dct_scaled_vs_pil_draft_$2 draft $PH/china.jpg $2 $3 $o/draft_$1.png" >> $L
done
for s in "china 100 50 224 224" "china 333 171 250 250" "gray 17 3 101 77" "cmyk 0 0 300 200" "flower 500 300 140 127" \
         "sub420 100 50 224 224" "sub420 15 17 33 31" "sub420 401 190 239 237" "sub422 333 171 250 250" "sub422 17 3 101 77" \
         "prog420 100 50 224 224" "prog420 15 17 33 31"; do
  set -- $s
  $TF region $2 $3 $4 $5 $PH/$1.jpg $o/reg_$1_$2.png 2>/dev/null &&
    echo "decode_region_$1_$2_$3 region $PH/$1.jpg $2 $3 $4 $5 $o/reg_$1_$2.png" >> $L
done
for s in "china 383 256" "china 300 200" "china 800 534" "china 224 224" "flower 1000 100" "flower 37 41"; do
  set -- $s
  $TF resize $PH/$1.jpg $2 $3 $o/rs_$1_$2_$3.png && echo "resize_$1_${2}x$3 resize $PH/$1.jpg $2 $3 $o/rs_$1_$2_$3.png" >> $L
done
for s in "china 575 384 100 50 224 224" "flower 383 256 0 0 224 224" "flower 383 256 159 32 224 224"; do
  set -- $s
  $TF window $PH/$1.jpg $2 $3 $4 $5 $6 $7 $o/win_$1_$4_$5.png &&
    echo "resize_crop_window_$1_$4_$5 window $PH/$1.jpg $2 $3 $4 $5 $6 $7 $o/win_$1_$4_$5.png" >> $L
done
for s in "china.jpg 256" "flower.jpg 296" "china.jpg 384" "odd0.png 100"; do
  set -- $s
  $TF resize-short $2 x $PH/$1 $o/tvr_$1_$2.png && echo "torchvision_resize_${1%.*}_$2 tvresize $PH/$1 $2 $o/tvr_$1_$2.png" >> $L
done
for s in "china.jpg 224 224" "odd0.png 100 101" "odd0.png 99 98" "odd0.png 180 210"; do
  set -- $s
  $TF center $2 $3 $PH/$1 $o/cc_$1_$2_$3.png && echo "center_crop_${1%.*}_${2}x$3 center $PH/$1 $2 $3 $o/cc_$1_$2_$3.png" >> $L
done
for s in "china.jpg 100" "china.jpg 50" "flower.jpg 60"; do
  set -- $s
  $TF decode-resize $2 $PH/$1 $o/dr_$1_$2.png 2>/dev/null && echo "dct_scaled_resize_${1%.*}_$2 dctscaled $PH/$1 $2 $o/dr_$1_$2.png" >> $L
done
for img in crop0 crop1 odd0; do
  for op in shearX shearY translateX translateY rotate color posterize solarize contrast sharpness brightness autocontrast equalize invert; do
    for m in 3 9; do
      for sign in 1 -1; do
        $TF aa $op $m $sign $PH/$img.png $o/aa_${img}_${op}_${m}_$sign.png &&
          echo "aa_${op}_m${m}_${sign}_$img aa $op $m $sign $PH/$img.png $o/aa_${img}_${op}_${m}_$sign.png" >> $L
      done
    done
  done
done
$CHECK compare $L

# ---- AutoAugment table and random choices ----
$TF policy imagenet > $W/policy_imagenet.txt
$CHECK table tests/data/seed_autoaugment.md $W/policy_imagenet.txt
for pol in imagenet cifar10 svhn; do
  $TF policy $pol > $W/policy_$pol.txt
  $TF draws $pol 100000 > $W/draws_$pol.txt
  $CHECK draws $pol 100000 $W/draws_$pol.txt $W/policy_$pol.txt
done

$TF pipedraws 20000 > $W/pipedraws.txt && $CHECK pipedraws $W/pipedraws.txt

# ---- random_erasing: the erase against F.erase, the boxes against get_params ----
"$PYTHON" tests/data/aug_ref.py $W/aug_tool erasing $PH/crop0.png $W/out
# ---- RandAugment and TrivialAugmentWide against torchvision (tables, ops, choices, whole applications) ----
"$PYTHON" tests/data/aug_ref.py $W/aug_tool tv $W/out $PH/crop0.png $PH/odd0.png

# ---- loader: bad input ----
BAD=$W/bad
rm -rf $BAD
$CHECK bad_corpus $BAD $PH/china.jpg
expect_bad() { # $1 = log, $2 = case name
  local log=$1 name=$2 ok=1 why=""
  grep -q "^samples 7 " $log || { ok=0; why="samples: $(grep '^samples' $log)"; }
  for r in "1 truncated image" "1 not a JPEG or PNG image" "1 zero-byte file" "1 declared dimensions too large" \
           "1 image smaller than 2x2" "2 unreadable file" "1 empty class folder" "1 not a .jpg/.jpeg/.png file"; do
    grep -q "$r" $log || { ok=0; why="$why missing '$r'"; }
  done
  grep -q "skipped 9:" $log || { ok=0; why="$why (want 9 skipped)"; }
  grep -q "dangling.jpg\|truncated.jpg\|random.jpg\|zero.jpg\|huge.jpg" $log || { ok=0; why="$why no example paths"; }
  grep -q "^ERROR" $log && { ok=0; why="$why $(grep ^ERROR $log)"; }
  if [ $ok = 1 ]; then echo "PASS $name"; else echo "FAIL $name:$why"; fi
}
for cache in decoded jpeg none; do
  for t in 1 2; do
    $LT $BAD train demo-train --cache $cache --threads $t --batch 3 --epochs 2 > $W/bad_${cache}_$t.log 2>&1
    rc=$?
    [ $rc -ne 0 ] && echo "FAIL bad_input_${cache}_t$t: exit $rc: $(tail -2 $W/bad_${cache}_$t.log)" && continue
    expect_bad $W/bad_${cache}_$t.log bad_input_${cache}_t$t
  done
done
# the same under AddressSanitizer + UBSan (the loader tool built with them)
if cc $FLAGS -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined \
     -o $W/loader_tool_asan tests/data/loader_tool.c $SRCS $LIBS 2>>$W/build.log; then
  for cache in decoded jpeg none; do
    ASAN_OPTIONS=detect_leaks=1 $W/loader_tool_asan $BAD train demo-train --cache $cache --threads 2 --batch 3 \
      --epochs 2 > $W/bad_asan_$cache.log 2>&1
    rc=$?
    if [ $rc -ne 0 ]; then echo "FAIL bad_input_asan_$cache: exit $rc: $(grep -m3 'ERROR\|runtime error' $W/bad_asan_$cache.log)"
    else expect_bad $W/bad_asan_$cache.log bad_input_asan_$cache; fi
  done
else
  skip_each "cannot build with -fsanitize=address,undefined" bad_input_asan_decoded bad_input_asan_jpeg bad_input_asan_none
fi
# every bad file through `rxc transform` (the AddressSanitizer build when there is one): a
# clear error and exit status 1, never a crash
RX="$RXC"; [ -x "$RXC_ASAN" ] && RX="$RXC_ASAN"
if [ -x "$RX" ]; then
  ok=1; why=""
  for f in truncated.jpg random.jpg zero.jpg huge.jpg one.jpg folder.jpg dangling.jpg; do
    "$RX" transform "none" $BAD/train/bad/$f $W/out/bad_$f.png > $W/badcmd.log 2>&1
    rc=$?
    if [ $rc -ne 1 ] || grep -q "Sanitizer\|runtime error" $W/badcmd.log || ! grep -q "rxc: transform\|$f" $W/badcmd.log; then
      ok=0; why="$why $f (exit $rc: $(head -c 120 $W/badcmd.log))"
    fi
  done
  if [ $ok = 1 ]; then echo "PASS cmd_transform_bad_files (${RX#$PWD/}: 7 bad inputs, each a message and exit 1)"
  else echo "FAIL cmd_transform_bad_files:$why"; fi
else
  skip cmd_transform_bad_files "$RXC not built"
fi
# mutated JPEGs (bit flips, cut points, garbage runs) through decode and region decode
# under AddressSanitizer + UBSan: each a clean decode or a clean refusal
if cc $FLAGS -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined \
     -o $W/tf_tool_asan tests/data/tf_tool.c $SRCS $LIBS 2>>$W/build.log; then
  FZ=$W/fuzz; rm -rf $FZ; mkdir -p $FZ
  $PYTHON - $BAD/train/good/g5.jpg $PH/prog420.jpg $FZ <<'EOF'
import os, random, sys
rng = random.Random(1234)
for k, src in enumerate(sys.argv[1:3]):
    data = open(src, "rb").read()
    for i in range(60):
        b = bytearray(data)
        kind = i % 3
        if kind == 0:
            for _ in range(rng.randint(1, 8)):
                p = rng.randrange(2, len(b)); b[p] ^= 1 << rng.randrange(8)
        elif kind == 1:
            b = b[: rng.randrange(4, len(b))]
        else:
            p = rng.randrange(2, len(b) - 64); b[p:p + 64] = bytes(rng.randrange(256) for _ in range(64))
        open(os.path.join(sys.argv[3], "m%d_%03d.jpg" % (k, i)), "wb").write(bytes(b))
EOF
  bad=0; n=0; okdec=0
  for f in $FZ/*.jpg; do
    n=$((n + 1))
    # (leaks are checked on the loader above; this one-shot tool exits without freeing)
    ASAN_OPTIONS=detect_leaks=0:exitcode=99 $W/tf_tool_asan decode $f $FZ/out.png > $FZ/log 2>&1; rc=$?
    ASAN_OPTIONS=detect_leaks=0:exitcode=99 $W/tf_tool_asan region 8 8 40 30 $f $FZ/out2.png >> $FZ/log 2>&1; rc2=$?
    [ $rc -eq 0 ] && okdec=$((okdec + 1))
    if [ $rc -gt 1 ] || [ $rc2 -gt 1 ] || grep -q "Sanitizer\|runtime error" $FZ/log; then bad=$((bad + 1)); cp $FZ/log $FZ/fail_$(basename $f).log; fi
  done
  if [ $bad -eq 0 ]; then echo "PASS decode_mutated_jpegs_asan ($n mutated files: $okdec decoded, the rest refused cleanly)"
  else echo "FAIL decode_mutated_jpegs_asan: $bad of $n crashed or tripped the sanitizers (logs in $FZ)"; fi
else
  skip decode_mutated_jpegs_asan "cannot build with -fsanitize=address,undefined"
fi
$LT $BAD nothing demo-train > $W/nothing.log 2>&1
if grep -q "^ERROR .*$BAD/nothing: no usable image" $W/nothing.log; then echo "PASS no_usable_image_error ($(grep ^ERROR $W/nothing.log | cut -c7-90)...)"
else echo "FAIL no_usable_image_error: $(cat $W/nothing.log | head -3)"; fi
$LT $BAD missing demo-train > $W/missing.log 2>&1
if grep -q "^ERROR .*$BAD/missing" $W/missing.log; then echo "PASS missing_split_error"
else echo "FAIL missing_split_error: $(head -3 $W/missing.log)"; fi

# ---- loader: determinism, shuffle, drop_last, output kinds ----
SS=$W/seedset
rm -rf $SS
mkdir -p $SS/train/a_china $SS/train/b_flower $SS/val/a_china $SS/val/b_flower
for i in 1 2 3 4; do
  cp $PH/china.jpg $SS/train/a_china/c$i.jpg; cp $PH/flower.jpg $SS/train/b_flower/f$i.jpg
done
cp $PH/china.jpg $SS/val/a_china/c.jpg; cp $PH/flower.jpg $SS/val/b_flower/f.jpg; cp $PH/gray.jpg $SS/val/a_china/g.jpg
cp $PH/sub420.jpg $SS/train/a_china/s420.jpg; cp $PH/sub422.jpg $SS/train/b_flower/s422.jpg
cp $PH/prog420.jpg $SS/val/b_flower/p420.jpg; cp $PH/sub420.jpg $SS/val/a_china/s420.jpg
hashes() { grep '^epoch' "$1" | awk '{print $2, $4, $6, $7, $9}'; }
for cache in decoded jpeg none; do
  for t in 1 2 3; do
    $LT $SS train seed-train --cache $cache --threads $t --batch 3 --epochs 2 > $W/det_${cache}_$t.log 2>&1
  done
done
if [ -n "$(hashes $W/det_decoded_1.log)" ] && [ "$(hashes $W/det_decoded_1.log)" = "$(hashes $W/det_decoded_2.log)" ] &&
   [ "$(hashes $W/det_decoded_1.log)" = "$(hashes $W/det_decoded_3.log)" ]; then
  echo "PASS loader_threads_1_2_3_identical (seed train pipeline, 2 epochs, $(grep -c '^epoch' $W/det_decoded_1.log) batches)"
else echo "FAIL loader_threads_1_2_3_identical: batch hashes differ"; fi
same=1
for f in jpeg_1 jpeg_2 none_1 none_2; do [ "$(hashes $W/det_decoded_1.log)" = "$(hashes $W/det_$f.log)" ] || same=0; done
if [ $same = 1 ]; then echo "PASS loader_cache_modes_identical (decoded, jpeg, none)"
else echo "FAIL loader_cache_modes_identical: batches differ between cache modes"; fi
RXC_CACHE_LIMIT_MIB=0 $LT $SS train seed-train --cache decoded --threads 2 --batch 3 --epochs 2 > $W/det_limit.log 2>&1
if grep -q "cache jpeg .*over half of this machine's memory" $W/det_limit.log &&
   [ "$(hashes $W/det_decoded_1.log)" = "$(hashes $W/det_limit.log)" ]; then
  echo "PASS loader_decoded_cache_memory_guard (falls back to JPEG bytes, same batches)"
else echo "FAIL loader_decoded_cache_memory_guard: $(grep -m1 '^data:\|^ERROR' $W/det_limit.log)"; fi
$LT $SS train seed-train --threads 2 --batch 3 --epochs 2 --indices > $W/shuffle.log 2>&1
$PYTHON - $W/shuffle.log <<'EOF'
import sys
import harness
ep = {}
for line in open(sys.argv[1]):
    if line.startswith("indices"):
        e = int(line.split()[1].rstrip(":"))
        ep.setdefault(e, []).extend(int(t.split("/")[0]) for t in line.split(":")[1].split())
ok = sorted(ep.get(0, [])) == list(range(10)) and sorted(ep.get(1, [])) == list(range(10)) and ep[0] != ep[1] and ep[0] != list(range(10))
harness.check("loader_shuffle", ok, "%s" % ep, "each epoch a permutation of 10, epochs differ: %s / %s" % (ep[0], ep[1]))
EOF
$LT $SS train seed-train --batch 3 --drop-last > $W/drop.log 2>&1
$LT $SS train seed-train --batch 3 > $W/nodrop.log 2>&1
if grep -q "batches 3 " $W/drop.log && grep -q "batches 4 " $W/nodrop.log && grep -q "batch 3 n 1 " $W/nodrop.log &&
   [ "$(grep -c '^epoch' $W/drop.log)" = 3 ]; then echo "PASS loader_drop_last (10 samples, batch 3: 3 batches vs 4 with a short last one)"
else echo "FAIL loader_drop_last: $(grep '^samples' $W/drop.log) / $(grep '^samples' $W/nodrop.log)"; fi
$LT $SS val seed-val --val --threads 2 --batch 2 --dump $W/val_f32.bin > $W/val.log 2>&1
if grep -q "^ERROR" $W/val.log; then echo "FAIL loader_val_vs_torchvision: $(grep ^ERROR $W/val.log)"
else $CHECK valdump $SS val $W/val_f32.bin; fi
$LT $SS val seed-val --val --threads 2 --batch 2 --cache jpeg --dump $W/val_f32_jpeg.bin > $W/valj.log 2>&1
if cmp -s $W/val_f32.bin $W/val_f32_jpeg.bin; then echo "PASS loader_val_cache_jpeg_region_decode (identical to the full-decode batches)"
else echo "FAIL loader_val_cache_jpeg_region_decode: batches differ from cache decoded"; fi
$LT $SS val seed-val --val --u8 --batch 2 --dump $W/val_u8.bin > $W/valu8.log 2>&1
$PYTHON - $W/val_u8.bin $W/val_f32.bin <<'EOF'
import sys, numpy as np
import harness
u = np.fromfile(sys.argv[1], dtype=np.uint8).reshape(-1, 224, 224, 3)
f = np.fromfile(sys.argv[2], dtype=np.float32).reshape(u.shape)
mean = np.array([0.4625, 0.4580, 0.4295], np.float32); std = np.array([0.2452, 0.2390, 0.2469], np.float32)
ref = ((u.astype(np.float32) / np.float32(255)) - mean) / std
d = float(np.abs(ref - f).max())
harness.check("loader_u8_output", d <= 1e-6, "max diff %g" % d,
              "uint8 batches normalize to the float batches, max diff %g <= 1e-6" % d)
EOF

# ---- class display names: a class_names file is the front end's; Imagenette's wnids are built in ----
IN=$W/inette
rm -rf $IN && mkdir -p $IN/train/n01440764 $IN/train/n03888605 $IN/train/zebra
for c in n01440764 n03888605 zebra; do cp $PH/sub420.jpg $IN/train/$c/a.jpg; done
$LT $IN train seed-val --val > $W/inette.log 2>&1
if grep -q "classes 3: tench parachute zebra" $W/inette.log; then echo "PASS imagenette_display_names (sorted wnid folders, built-in names)"
else echo "FAIL imagenette_display_names: $(grep -m1 '^classes\|^ERROR' $W/inette.log)"; fi
printf 'n01440764 Tinca tinca\nzebra  Equus quagga \n' > $IN/names.txt
$LT $IN train seed-val --val --class-names names.txt > $W/inette2.log 2>&1
if grep -q "classes 3: Tinca tinca parachute Equus quagga" $W/inette2.log; then echo "PASS class_names_file (relative to the data root)"
else echo "FAIL class_names_file: $(grep -m1 '^classes\|^ERROR' $W/inette2.log)"; fi

# ---- CIFAR-10 binary ----
CF=$W/cifar
rm -rf $CF
$CHECK make_cifar $CF 4
$LT $CF train none --layout cifar10 --val --u8 --batch 5 --dump $W/cifar.bin --indices > $W/cifar.log 2>&1
if grep -q "^ERROR" $W/cifar.log; then echo "FAIL cifar10_binary: $(grep ^ERROR $W/cifar.log)"
else
  $CHECK cifar $CF $W/cifar.bin $W/cifar.log
  if grep -q "classes 10: airplane automobile" $W/cifar.log; then echo "PASS cifar10_class_names"
  else echo "FAIL cifar10_class_names: $(grep ^classes $W/cifar.log)"; fi
fi

C100=$W/cifar100
rm -rf $C100
$CHECK make_cifar100 $C100 7
$LT $C100 test none --layout cifar100 --val --u8 --batch 4 --dump $W/cifar100.bin --indices > $W/cifar100.log 2>&1
if grep -q "^ERROR" $W/cifar100.log; then echo "FAIL cifar100_binary_test_split: $(grep ^ERROR $W/cifar100.log)"
else $CHECK cifar $C100 $W/cifar100.bin $W/cifar100.log cifar100_binary_test_split; fi

# ---- the rxc commands ----
if [ -x "$RXC" ]; then
  if [ -n "$CSV" ]; then
    rm -rf $W/digits
    if "$RXC" demo --out $W/digits --csv $CSV > $W/demo.log 2>&1; then $CHECK demo $W/digits $CSV
    else echo "FAIL demo: $(tail -2 $W/demo.log)"; fi
    $LT $W/digits train demo-train --threads 2 --batch 64 > $W/digits.log 2>&1
    if grep -q "^samples 1438 " $W/digits.log && grep -q "classes 10: 0 1 2 3 4 5 6 7 8 9" $W/digits.log; then
      echo "PASS demo_loads (1438 train images, classes 0-9 in order)"
    else echo "FAIL demo_loads: $(grep -m2 '^samples\|^ERROR' $W/digits.log)"; fi
    # rxc augment: the tiny model's recipe reads data/digits relative to the working directory
    AUG=$W/augment
    rm -rf $AUG && mkdir -p $AUG/data && ln -s "$PWD/$W/digits" $AUG/data/digits
    if (cd $AUG && "$RXC" augment "$OLDPWD/models/tiny_resnext.net" --split train -n 16 -o grid.png > aug.log 2>&1); then
      $PYTHON - $AUG/grid.png $AUG/aug.log <<'EOF2'
import sys
from PIL import Image
import harness
im = Image.open(sys.argv[1])
log = open(sys.argv[2]).read()
ok = im.size == (4 * 34 + 2, 4 * 34 + 2) and "16 train samples" in log and "1438 images" in log
harness.check("cmd_augment_grid", ok, "size %s, log %s" % (im.size, log[-300:]), "4x4 grid of 32x32 samples, %dx%d" % im.size)
EOF2
    elif grep -q "not in this build\|not implemented" $AUG/aug.log; then echo "SKIP cmd_augment_grid: $(head -1 $AUG/aug.log)"
    else echo "FAIL cmd_augment_grid: $(tail -2 $AUG/aug.log)"; fi
  else
    skip_each "no digits.csv.gz in $SK (make setup)" demo_split demo_pixels demo_loads cmd_augment_grid
  fi
  if "$RXC" transform none $PH/crop0.png $o/cmd_rot.png --aa-op rotate,9,- > $W/tr.log 2>&1; then
    echo "cmd_transform_aa_rotate_m9_minus aa rotate 9 -1 $PH/crop0.png $o/cmd_rot.png" > $W/cmd.txt
    $CHECK compare $W/cmd.txt
  else echo "FAIL cmd_transform_aa_rotate_m9_minus: $(tail -2 $W/tr.log)"; fi
  if "$RXC" transform "resize(256) -> center_crop(224)" $PH/flower.jpg $o/cmd_val.png > $W/tr2.log 2>&1; then
    $TF resize-short 256 x $PH/flower.jpg $o/tmp_r.png   # pipeline reference via torchvision below
    $PYTHON - $PH/flower.jpg $o/cmd_val.png <<'EOF'
import sys, numpy as np
from PIL import Image
import torchvision.transforms as T
import harness
ref = np.asarray(T.Compose([T.Resize(256), T.CenterCrop(224)])(Image.open(sys.argv[1]).convert("RGB"))).astype(int)
ours = np.asarray(Image.open(sys.argv[2]).convert("RGB")).astype(int)
d = np.abs(ref - ours) if ref.shape == ours.shape else None
if d is None:
    harness.failed("cmd_transform_pipeline", "shape %s vs %s" % (ours.shape, ref.shape))
else:
    harness.check("cmd_transform_pipeline", d.max() == 0, "max diff %d" % d.max(),
                  "resize(256) -> center_crop(224) vs torchvision: max %d, tolerance 0" % d.max())
EOF
    # random_resized_crop with scale [1, 1] on a 3:2 photo: no attempt can succeed, so
    # torchvision's fallback decides (the central 569x427 crop), deterministically
    if "$RXC" transform "random_resized_crop(224, scale=[1.0, 1.0])" $PH/china.jpg $o/cmd_rrc.png --seed 9 > $W/tr3.log 2>&1; then
      $PYTHON - $PH/china.jpg $o/cmd_rrc.png <<'EOF'
import sys, numpy as np, torch
from PIL import Image
import torchvision.transforms as T
import harness
torch.manual_seed(0)
ref = np.asarray(T.RandomResizedCrop(224, scale=(1.0, 1.0))(Image.open(sys.argv[1]).convert("RGB"))).astype(int)
ours = np.asarray(Image.open(sys.argv[2]).convert("RGB")).astype(int)
d = np.abs(ref - ours) if ref.shape == ours.shape else None
if d is None:
    harness.failed("cmd_transform_rrc_fallback", "shape %s vs %s" % (ours.shape, ref.shape))
else:
    harness.check("cmd_transform_rrc_fallback", d.max() == 0, "max diff %d" % d.max(),
                  "random_resized_crop's fallback crop vs torchvision: max %d, tolerance 0" % d.max())
EOF
    else echo "FAIL cmd_transform_rrc_fallback: $(tail -2 $W/tr3.log)"; fi
  elif grep -q "not in this build\|not implemented" $W/tr2.log; then
    echo "SKIP cmd_transform_pipeline: $(head -1 $W/tr2.log)"
  else echo "FAIL cmd_transform_pipeline: $(tail -2 $W/tr2.log)"; fi
else
  skip_each "$RXC not built" demo_split demo_pixels demo_loads cmd_augment_grid cmd_transform_aa_rotate_m9_minus \
    cmd_transform_pipeline cmd_transform_rrc_fallback
fi
exit 0

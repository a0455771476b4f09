#!/usr/bin/env bash
# tests/docs — the documentation against the code it documents:
# docs/language.md against the front end's own tables (both directions), and
# the layout rules of docs/developers.md and docs/architecture.md against the tree.
set -u
cd "$(dirname "$0")/../.."
. tests/harness.sh
cases $((8 + 2)) # check_language_doc.py: ops, builtins, augment ops, data and train keys, optimizer/schedule/loss
                 # arguments; check_layout.py: file and function sizes, compiler/'s includes
PYTHON="${PYTHON:-/usr/bin/python3}"
"$PYTHON" tests/docs/check_layout.py "$PWD"
B=build/test-docs
mkdir -p "$B"
objs=$(ls build/release/obj/compiler/*.o build/release/obj/runtime/*.o build/release/obj/runtime/*/*.o build/release/obj/target/*/*.o \
           build/release/obj/gen/*.o | grep -v '/main\.o$')
if ! cc -std=c11 -D_GNU_SOURCE -Icompiler -Iruntime -Itarget/cpu -Itarget/cuda -Icli -Ibuild/release/gen -fopenmp -o "$B/dump_tables" \
       tests/docs/dump_tables.c $objs -lcjson -ljpeg -lpng -lm -ldl -lpthread 2> "$B/cc.log"; then
  fail docs_dump_tables_builds "$(head -c 400 "$B/cc.log")"

  exit 0
fi
"$B/dump_tables" > "$B/tables.txt"
"$PYTHON" tests/docs/check_language_doc.py "$B/tables.txt" docs/language.md

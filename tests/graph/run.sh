#!/usr/bin/env bash
# tests/graph — unit tests of the graph builders (compiler/graph.c), built
# with ASan/UBSan, plus (when rxc's front end is there) the elaborated model
# files against PyTorch/torchvision: counts and state_dict names and shapes.
set -u
cd "$(dirname "$0")/../.."
out=build/tests/graph
mkdir -p "$out"
if cc -D_GNU_SOURCE -Icompiler -std=c11 -O1 -g -Wall -Wextra -fsanitize=address,undefined -fno-sanitize-recover=undefined \
      compiler/graph.c compiler/util.c tests/graph/graph_test.c -o "$out/graph_test" -lm 2>"$out/build.log"; then
  "$out/graph_test" || true
else
  echo "FAIL graph_test_build: $(head -c 400 "$out/build.log")"
fi
if [ -x tests/graph/models.sh ]; then bash tests/graph/models.sh; fi
exit 0

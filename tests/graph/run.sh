#!/usr/bin/env bash
# tests/graph — the graph IR and the elaborator:
#   graph_test.c  builders (compiler/graph.c) under ASan/UBSan: shapes against
#                 PyTorch's formulas, shape errors, names, counts, MACs
#   models.py     every model file against PyTorch/torchvision: state_dict
#                 names, shapes and order, parameter counts, MACs (hooks)
#   fig3_equiv.py the three Figure 3 forms give the same outputs and gradients
#                 (rxc grad) under the weight mapping their files document
#   init_check.py `init torchvision` / `init pytorch` reach the initial weights
#   nets.py       naming rules and elaboration errors on small files (nets/)
set -u
cd "$(dirname "$0")/../.."
. tests/harness.sh
# graph_test.c 46, models.py 27, fig3_equiv.py 2, init_check.py 3, nets.py one per nets/*.net
cases $((46 + 27 + 2 + 3 + $(count_files tests/graph/nets/*.net)))
RXC="${RXC:-./rxc}"
PYTHON="${PYTHON:-/usr/bin/python3}"
out=build/tests/graph
mkdir -p "$out"
if cc -D_GNU_SOURCE -Icompiler -std=c11 -O1 -g -Wall -Wextra -fsanitize=address,undefined -fno-sanitize-recover=undefined \
      compiler/graph.c compiler/util.c compiler/error.c tests/graph/graph_test.c -o "$out/graph_test" -lm 2>"$out/build.log"; then
  "$out/graph_test" || true
else
  fail graph_test_build "$(head -c 400 "$out/build.log")"
fi
if [ ! -x "$RXC" ]; then
  fail models "$RXC is not built"
  exit 0
fi
if "$PYTHON" -c "import torch, torchvision" 2>/dev/null; then
  RXC="$RXC" "$PYTHON" tests/graph/models.py
  RXC="$RXC" "$PYTHON" tests/graph/fig3_equiv.py
  RXC="$RXC" "$PYTHON" tests/graph/init_check.py
else
  skip models "$PYTHON has no torch/torchvision"

fi
RXC="$RXC" "$PYTHON" tests/graph/nets.py
exit 0

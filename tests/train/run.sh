#!/usr/bin/env bash
# tests/train — the trainer: safetensors, checkpoints, schedules, optimizers,
# whole models against PyTorch, resume, bad checkpoints, end-to-end training,
# and the run-directory and data-set defects of test_defects.py.
# Run from the repository root: bash tests/run_all.sh train
set -u
PYTHON="${PYTHON:-/usr/bin/python3}"
RXC="${RXC:-$PWD/rxc}"
RXC_ASAN="${RXC_ASAN:-$PWD/build/asan/rxc}"
export PYTHON RXC RXC_ASAN
export RXC_CACHE_DIR="${RXC_CACHE_DIR:-$PWD/build/test-cache}"
dir=build/test-train
mkdir -p "$dir"

# The pure pieces (safetensors, schedules, init) through a small driver built
# from the same sources rxc uses, plain and with sanitizers.
srcs="tests/train/unit.c runtime/safetensors.c runtime/schedule.c runtime/init.c compiler/util.c compiler/error.c"
flags="-D_GNU_SOURCE -Icompiler -Iruntime -Itarget/cpu -Itarget/cuda -Icli -std=c11 -g -Wall -Wextra"
if ! cc $flags -O1 -o "$dir/unit" $srcs -lcjson -lm 2>"$dir/unit.log"; then
  echo "FAIL unit_driver_build: $(head -c 600 "$dir/unit.log")"
  exit 1
fi
asan=""
if cc $flags -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined -o "$dir/unit_asan" $srcs -lcjson -lm 2>/dev/null; then
  asan="$dir/unit_asan"
fi
"$PYTHON" tests/train/test_units.py "$dir/unit" $asan

# Everything else runs rxc itself.
if [ ! -x "$RXC" ]; then
  echo "SKIP rxc_tests: no $RXC (run make)"
  exit 0
fi
"$PYTHON" tests/train/test_cache_dir.py
"$PYTHON" tests/train/test_rxc.py
# The defects of issue 12 (shape checks, labels by class name, the run
# directory's lock, best/last, temporary files, exit codes, log lines).
"$PYTHON" tests/train/test_defects.py

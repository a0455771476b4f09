#!/usr/bin/env bash
# tests/train — the trainer: safetensors, checkpoints, schedules, optimizers,
# whole models against PyTorch, resume, bad checkpoints, end-to-end training,
# and the run-directory and data-set defects of test_defects.py.
# Run from the repository root: bash tests/run_all.sh train
set -u
cd "$(dirname "$0")/../.."
. tests/harness.sh
# test_units.py: 73 (20 bad safetensors files, plain and under ASan, 5 more safetensors cases, 18 schedules,
# scalars, 6 init kinds, 3 mixup/cutmix draws); test_rxc.py: 67 (step_probe, grad 3, optim 22 (3 of them mixing, 5 LAMB), badckpt 14, model 16, training 11);
# test_cache_dir.py: 4; test_defects.py: 27; test_ema.py: 9 (2 step comparisons, resume, best, eval --ema)
cases $((73 + 67 + 4 + 27 + 9))
PYTHON="${PYTHON:-/usr/bin/python3}"
RXC="${RXC:-$PWD/rxc}"
RXC_ASAN="${RXC_ASAN:-$PWD/build/asan/rxc}"
export PYTHON RXC RXC_ASAN
export RXC_CACHE_DIR="${RXC_CACHE_DIR:-$PWD/build/test-cache}"
# `tests/run_all.sh train CASE`: test_rxc.py runs only the group of CASE (RXC_TRAIN_TESTS)
if [ -n "${RXC_TEST_CASE:-}" ] && [ -z "${RXC_TRAIN_TESTS:-}" ]; then
  case "$RXC_TEST_CASE" in
    grad_*) RXC_TRAIN_TESTS=grad ;;
    optim_*) RXC_TRAIN_TESTS=optim ;;
    badckpt_*) RXC_TRAIN_TESTS=badckpt ;;
    model_*) RXC_TRAIN_TESTS=models ;;
    e2e_* | resume_* | sigterm_* | nan_* | missing_data_*) RXC_TRAIN_TESTS=training ;;
    *_group) RXC_TRAIN_TESTS=${RXC_TEST_CASE%_group} ;;
    *) RXC_TRAIN_TESTS=none ;; # test_units.py's cases, or step_probe
  esac
  export RXC_TRAIN_TESTS
fi

dir=build/test-train
mkdir -p "$dir"

# The pure pieces (safetensors, schedules, init) through a small driver built
# from the same sources rxc uses, plain and with sanitizers.
srcs="tests/train/unit.c runtime/safetensors.c runtime/schedule.c runtime/mix.c runtime/init.c compiler/util.c compiler/error.c"
flags="-D_GNU_SOURCE -Icompiler -Iruntime -Itarget/cpu -Itarget/cuda -Icli -std=c11 -g -Wall -Wextra"
if ! cc $flags -O1 -o "$dir/unit" $srcs -lcjson -lm 2>"$dir/unit.log"; then
  fail unit_driver_build "$(head -c 600 "$dir/unit.log")"
  exit 1
fi
asan=""
if cc $flags -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined -o "$dir/unit_asan" $srcs -lcjson -lm 2>/dev/null; then
  asan="$dir/unit_asan"
fi
"$PYTHON" tests/train/test_units.py "$dir/unit" $asan

# Everything else runs rxc itself.
if [ ! -x "$RXC" ]; then
  fail rxc_tests "no $RXC (run make)"
  exit 1
fi
"$PYTHON" tests/train/test_cache_dir.py
"$PYTHON" tests/train/test_rxc.py
# The defects of issue 12 (shape checks, labels by class name, the run
# directory's lock, best/last, temporary files, exit codes, log lines).
"$PYTHON" tests/train/test_defects.py
# The EMA of the weights (`ema`, `ema_every`) against torchvision's reference, resume, eval --ema.
if [ -z "${RXC_TEST_CASE:-}" ] || [ "${RXC_TEST_CASE#ema_}" != "$RXC_TEST_CASE" ]; then
  "$PYTHON" tests/train/test_ema.py
fi

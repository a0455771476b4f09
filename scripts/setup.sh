#!/usr/bin/env bash
# setup.sh — everything rxc builds with and `make test` checks against:
#   packages      the Debian packages (needs root or sudo, only when one is missing)
#   tensorboard   build/tensorboard-venv: TensorBoard from PyPI (Debian 12 has no
#                 package), whose reader tests/runlog checks the event files with
#   test-data     build/deps/sklearn: china.jpg, flower.jpg and digits.csv.gz from
#                 Debian's python3-sklearn (unpacked, not installed), for tests/data
#                 and `rxc demo --csv`
# Usage: scripts/setup.sh [STEP...]    (every step by default; each skips what is present)
# In strict mode (the default of tests/run_all.sh) a suite fails when any of
# this is missing, so a failed step stops here with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-/usr/bin/python3}"

packages=(
  build-essential flex bison pkg-config
  libopenblas-dev libcjson-dev libjpeg62-turbo-dev libpng-dev
  clang llvm                                   # libFuzzer and sanitizers for `make fuzz`
  groff-base                                   # tests/manual renders the man page
  strace                                       # tests/train sees the order checkpoints are renamed in
  python3 python3-numpy python3-torch python3-torchvision python3-pil   # test oracles
  python3-venv                                 # build/tensorboard-venv
)
TENSORBOARD_VENV=build/tensorboard-venv
TEST_DATA=build/deps/sklearn
SKLEARN_DATA_FILES=(images/china.jpg images/flower.jpg data/digits.csv.gz)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

install_packages() {
  local missing=() p
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "setup: all packages present"
    return
  fi
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

install_tensorboard() {
  if [ -x "$TENSORBOARD_VENV/bin/python" ] && "$TENSORBOARD_VENV/bin/python" -c "import tensorboard" 2>/dev/null; then
    echo "setup: TensorBoard present in $TENSORBOARD_VENV"
    return
  fi
  echo "setup: installing TensorBoard from PyPI into $TENSORBOARD_VENV"
  # system site packages: the venv keeps Debian's numpy, which TensorBoard's reader needs
  "$PYTHON" -m venv --system-site-packages "$TENSORBOARD_VENV"
  "$TENSORBOARD_VENV/bin/pip" install -q tensorboard
}

fetch_test_data() {
  local f have=1
  for f in "${SKLEARN_DATA_FILES[@]}"; do [ -f "$TEST_DATA/$(basename "$f")" ] || have=0; done
  if [ $have = 1 ]; then
    echo "setup: test data present in $TEST_DATA"
    return
  fi
  echo "setup: fetching python3-sklearn's sample images and digits into $TEST_DATA"
  local tmp
  tmp=$(mktemp -d)
  # apt-get download needs the package lists, which a fresh container may lack
  if ! (cd "$tmp" && apt-get download python3-sklearn > /dev/null 2>&1); then
    $SUDO apt-get update -qq
    (cd "$tmp" && apt-get download python3-sklearn > /dev/null)
  fi
  dpkg -x "$tmp"/python3-sklearn_*.deb "$tmp/x"
  mkdir -p "$TEST_DATA"
  for f in "${SKLEARN_DATA_FILES[@]}"; do
    cp "$tmp/x/usr/lib/python3/dist-packages/sklearn/datasets/$f" "$TEST_DATA/"
  done
  rm -rf "$tmp"
}

steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(packages tensorboard test-data)
for step in "${steps[@]}"; do
  case "$step" in
    packages) install_packages ;;
    tensorboard) install_tensorboard ;;
    test-data) fetch_test_data ;;
    *) echo "setup: unknown step '$step' (packages, tensorboard, test-data)" >&2; exit 2 ;;
  esac
done

#!/usr/bin/env bash
# setup.sh — install the Debian packages rxc builds with and tests against.
# Skips what is present; needs root (or sudo) only when something is missing.
set -euo pipefail

packages=(
  build-essential flex bison pkg-config
  libopenblas-dev libcjson-dev libjpeg62-turbo-dev libpng-dev
  clang llvm                                   # libFuzzer and sanitizers for `make fuzz`
  python3 python3-numpy python3-torch python3-torchvision python3-pil   # test oracles
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all packages present"
  exit 0
fi
echo "setup: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

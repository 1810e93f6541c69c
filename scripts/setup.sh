#!/usr/bin/env bash
# Installs what ipckit needs on Debian 12 (run as root). Only missing packages
# are installed, so a second run costs a few dpkg queries.
#   scripts/setup.sh            build + test + bench dependencies
set -euo pipefail

packages=(
  # build
  g++ make cmake ninja-build pkg-config
  # tools: {fmt}, CLI11, nlohmann-json
  libfmt-dev libcli11-dev nlohmann-json3-dev
  # tests, fuzzing (clang + libFuzzer runtime), benchmarks
  googletest libgtest-dev clang libclang-rt-14-dev libbenchmark-dev
  # layout check (.clang-format)
  clang-format
  # benchmark peers: Boost.Interprocess, ZeroMQ
  libboost-dev libzmq3-dev
  # programs the tests talk to: nc, socat, kill --queue, ps, headless browser
  netcat-openbsd socat util-linux procps chromium
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: missing packages: ${missing[*]}; run as root (or with sudo)" >&2
  exit 1
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"

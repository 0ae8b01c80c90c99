#!/usr/bin/env bash
# install-deps.sh — install the Debian packages that cdgan's build, tests, trainer and benchmarks need.
#
#   scripts/install-deps.sh [extra-package ...]
#
# Non-interactive; runs apt-get (as root, or through sudo when available) only when a package is
# missing, so a second run is instant and works offline. Called by scripts/test.sh, .ci/run and
# scripts/train-mnist.sh. The CUDA toolkit is not installed here: where nvcc exists (on PATH or in
# /usr/local/cuda/bin) the build adds the CUDA backend and its tests by itself.
set -euo pipefail

packages=(
    cmake make g++ pkg-config git ca-certificates
    libeigen3-dev            # the CPU backend (header-only)
    doctest-dev              # unit tests
    libfmt-dev libcli11-dev nlohmann-json3-dev zlib1g-dev libstb-dev   # trainer, I/O
    libbenchmark-dev         # benchmarks
    python3 python3-numpy    # fixture generators and checkpoint readers in tests/
    "$@"
)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
    echo "install-deps.sh: all ${#packages[@]} packages are installed"
    exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "install-deps.sh: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
fi
echo "install-deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"

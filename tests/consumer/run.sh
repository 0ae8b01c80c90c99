#!/usr/bin/env bash
# run.sh <src-dir> <work-dir> — cdgan's packaging test.
#
# 1. configures cdgan from <src-dir> (tests, examples and benchmarks off) and installs it into
#    <work-dir>/prefix;
# 2. builds tests/consumer against that install (find_package(cdgan CONFIG)) and runs it;
# 3. builds tests/consumer again with cdgan taken through FetchContent from <src-dir> and runs it.
# Each consumer returns 0 only if its network trained and gave finite outputs. Nothing is downloaded.
# Environment: CMAKE_GENERATOR / CMAKE_BUILD_PARALLEL_LEVEL are honoured; CDGAN_CONSUMER_CUDA=OFF
# configures cdgan without CUDA even where nvcc exists.
set -euo pipefail

if [[ $# -ne 2 ]]; then
    echo "usage: $0 <src-dir> <work-dir>" >&2
    exit 2
fi
src="$(cd "$1" && pwd)"
mkdir -p "$2"
work="$(cd "$2" && pwd)"
prefix="$work/prefix"
consumer="$src/tests/consumer"
jobs="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"

cuda_args=()
if [[ "${CDGAN_CONSUMER_CUDA:-ON}" == OFF ]]; then
    cuda_args=(-DCMAKE_CUDA_COMPILER=NOTFOUND)
fi

start=$SECONDS
step() { echo "== consumer/run.sh [$((SECONDS - start)) s]: $*"; }

rm -rf "$prefix" "$work/cdgan-build" "$work/find_package" "$work/fetchcontent"

step "install cdgan into $prefix"
cmake -S "$src" -B "$work/cdgan-build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$prefix" \
    -DCDGAN_BUILD_TESTS=OFF -DCDGAN_BUILD_EXAMPLES=OFF -DCDGAN_BUILD_BENCHMARKS=OFF -DCDGAN_INSTALL=ON \
    "${cuda_args[@]}" >"$work/cdgan-configure.log" || { cat "$work/cdgan-configure.log"; exit 1; }
cmake --build "$work/cdgan-build" -j "$jobs"
cmake --install "$work/cdgan-build" >"$work/cdgan-install.log"
for f in include/cdgan/cdgan.hpp include/cdgan/optim/adam.hpp \
         share/cmake/cdgan/cdganConfig.cmake share/cmake/cdgan/cdganConfigVersion.cmake \
         share/cmake/cdgan/cdganTargets.cmake; do
    [[ -f "$prefix/$f" ]] || { echo "consumer/run.sh: the install lacks $f" >&2; exit 1; }
done

for how in find_package fetchcontent; do
    step "consumer via $how"
    if [[ $how == find_package ]]; then where=(-DCMAKE_PREFIX_PATH="$prefix"); else where=(-DCDGAN_SOURCE_DIR="$src"); fi
    cmake -S "$consumer" -B "$work/$how" -DCMAKE_BUILD_TYPE=Release -DCDGAN_CONSUME="$how" \
        "${where[@]}" "${cuda_args[@]}" \
        >"$work/$how-configure.log" || { cat "$work/$how-configure.log"; exit 1; }
    grep -E "^-- cdgan" "$work/$how-configure.log" || true
    cmake --build "$work/$how" -j "$jobs"
    "$work/$how/consumer"
done
step "both consumers passed"

#!/usr/bin/env bash
# test.sh — cdgan's whole test suite, as CI runs it.
#
#   bash scripts/test.sh            (from anywhere; builds under the repository root)
#
# 1. deps:    scripts/install-deps.sh (apt-get, only for missing packages)
# 2. build:   Release build of the library, tests, examples and benchmarks into build/ (-j2); the
#             CUDA backend and tests/cuda are compiled too when nvcc is found (on PATH or in
#             /usr/local/cuda/bin)
# 3. test:    ctest --output-on-failure in build/ (the packaging test is left to step 6)
# 4. asan:    tests only, -DCDGAN_SANITIZE=ON (AddressSanitizer + UBSan), RelWithDebInfo at -O1,
#             CPU only, into build-asan/
# 5. test:    ctest in build-asan/, without the tests labelled "slow" or "packaging"
# 6. package: tests/consumer/run.sh: install into build/packaging/prefix, then build and run a
#             consumer with find_package and with FetchContent
# Prints the wall time of each phase. Environment: CDGAN_JOBS (default 2), CDGAN_TEST_SKIP (a
# space-separated list of phases to skip: asan package).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
jobs="${CDGAN_JOBS:-2}"
skip=" ${CDGAN_TEST_SKIP:-} "
export CMAKE_BUILD_PARALLEL_LEVEL="$jobs"
export CTEST_PARALLEL_LEVEL="${CTEST_PARALLEL_LEVEL:-$jobs}"

if ! command -v nvcc >/dev/null 2>&1 && [[ -x /usr/local/cuda/bin/nvcc ]]; then
    export PATH="/usr/local/cuda/bin:$PATH"
fi

timings=()
phase_start=0
begin() {
    phase_name="$1"
    phase_start=$(date +%s)
    echo
    echo "=== test.sh: $phase_name"
}
end() {
    local t=$(($(date +%s) - phase_start))
    timings+=("$(printf '%-10s %5d s' "$phase_name" "$t")")
    echo "=== test.sh: $phase_name done in ${t} s"
    phase_name=""
}
phase_name=""
report() {
    local rc=$?
    if [[ $rc -ne 0 && -n $phase_name ]]; then
        timings+=("$(printf '%-10s %5d s  FAILED' "$phase_name" "$(($(date +%s) - phase_start))")")
    fi
    echo
    echo "=== test.sh: timings"
    printf '  %s\n' "${timings[@]}"
    if [[ $rc -ne 0 ]]; then echo "=== test.sh: FAILED in phase ${phase_name:-?} (exit $rc)"; fi
}
trap report EXIT

begin deps
bash "$root/scripts/install-deps.sh"
bash "$root/scripts/setup-data.sh" mnist   # for the trainer's end-to-end smoke test
end

begin build
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$jobs"
end

begin test
(cd build && ctest --output-on-failure -LE packaging)
end

if [[ $skip != *" asan "* ]]; then
    begin asan-build
    cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
        -DCDGAN_SANITIZE=ON -DCDGAN_BUILD_EXAMPLES=OFF -DCDGAN_BUILD_BENCHMARKS=OFF -DCDGAN_INSTALL=OFF \
        -DCMAKE_CUDA_COMPILER=NOTFOUND
    cmake --build build-asan -j "$jobs"
    end

    begin asan-test
    (cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
        ctest --output-on-failure -LE "slow|packaging")
    end
fi

if [[ $skip != *" package "* ]]; then
    begin package
    bash "$root/tests/consumer/run.sh" "$root" "$root/build/packaging"
    end
fi

echo
echo "=== test.sh: all phases passed"

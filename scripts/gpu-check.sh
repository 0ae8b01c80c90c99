#!/usr/bin/env bash
# gpu-check.sh — builds and checks cdgan's CUDA backend on a machine with an NVIDIA GPU, nvcc and CMake,
# without network and without Eigen, doctest, fmt, CLI11, nlohmann-json or Google Benchmark installed:
# they come from HEADERS_DIR, made on a Debian machine by scripts/pack-gpu-headers.sh (docs/gpu.md).
#
#   bash scripts/gpu-check.sh HEADERS_DIR [OUT]
#
#   HEADERS_DIR  the folder of scripts/pack-gpu-headers.sh (usr/include/..., the packages' CMake configs,
#                zlib's libz.a, optionally Google Benchmark)
#   OUT          where summary.md, the logs and the JSON results go (default /tmp/cdgan-gpu-check). The
#                build tree is elsewhere: $CDGAN_GPU_BUILD (default /tmp/cdgan-gpu-build), so that OUT
#                stays small.
#
# What it does, each phase under a timeout, the whole run within $CDGAN_GPU_CHECK_BUDGET seconds (default
# 450: under 8 minutes on an H100 machine, where nvcc compiles the translation units in parallel):
#  1. the GPU (nvidia-smi), nvcc, CMake; configures a Release build with every dependency taken from
#     HEADERS_DIR (-DEigen3_DIR=..., -Ddoctest_DIR=..., ..., -DZLIB_LIBRARY=<HEADERS_DIR>/.../libz.a) and
#     CUDA architecture = the GPU's compute capability (the project's default, sm_90, without a GPU);
#  2. builds cdgan_cuda_tests (tests/cuda/*.cu: every layer, the backend, and the whole-model parity test
#     parity_test.cu), cdgan_bench_cuda (when Google Benchmark is in HEADERS_DIR) and a CUDA trainer
#     (cdgan-train-cuda) when the build defines one; $CDGAN_JOBS parallel jobs (default: all cores);
#  3. runs the CUDA tests (ctest -L cuda): without a GPU they report "Skipped" (exit code 77);
#  4. runs the GPU benchmark (GEMM against cuBLAS, layers, the MNIST step) into OUT/bench_cuda.json;
#  5. runs benchmarks/pytorch_step.py --device cuda when torch imports and sees a GPU ($CDGAN_PYTHON, else
#     the first of python3 and /usr/bin/python3 that imports torch), and prints PyTorch's step time over
#     cdgan's (the same step, same batches, same GPU, both FP32);
#  6. trains MNIST for a few hundred steps on the GPU when a CUDA trainer was built and the MNIST files
#     are in $CDGAN_MNIST_DIR (default data/mnist);
#  7. writes OUT/summary.md: the GPU, pass / fail / skipped of each test, timings, what did not run, why.
# Exit code: 0 when nothing failed (skipped phases are not failures), 1 otherwise.
set -uo pipefail

usage() {
  sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
  exit 2
}
[[ $# -lt 1 || $# -gt 2 || "$1" == -h || "$1" == --help ]] && usage

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
headers="$(cd "$1" 2>/dev/null && pwd)" || {
  echo "gpu-check: HEADERS_DIR $1 does not exist (make it with scripts/pack-gpu-headers.sh)" >&2
  exit 2
}
out="${2:-/tmp/cdgan-gpu-check}"
mkdir -p "$out/logs"
out="$(cd "$out" && pwd)"
build="${CDGAN_GPU_BUILD:-/tmp/cdgan-gpu-build}"
jobs="${CDGAN_JOBS:-$(nproc 2>/dev/null || echo 4)}"
budget="${CDGAN_GPU_CHECK_BUDGET:-450}"
mnist="${CDGAN_MNIST_DIR:-$root/data/mnist}"
t0=$(date +%s)
summary="$out/summary.md"
failures=0

log() { echo "gpu-check [$(($(date +%s) - t0)) s]: $*" >&2; }
left() { echo $((budget - ($(date +%s) - t0))); }
# The smaller of $1 seconds and what is left of the budget (at least 5).
cap() {
  local want=$1 l
  l=$(left)
  ((l < want)) && want=$l
  ((want < 5)) && want=5
  echo "$want"
}

# Sections of the summary, filled as the phases run.
declare -a S_ENV S_PHASES S_TESTS S_PARITY S_GRAPH S_BENCH S_TORCH S_TRAIN S_NOTDONE
phase() {  # phase NAME STATUS SECONDS [NOTE]
  S_PHASES+=("| $1 | $2 | $3 s | ${4:-} |")
}

write_summary() {
  {
    echo "# cdgan GPU check"
    echo
    echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), host $(hostname), total $(($(date +%s) - t0)) s (budget $budget s)."
    echo
    echo "## Machine"
    echo
    printf '%s\n' "${S_ENV[@]}"
    echo
    echo "## Phases"
    echo
    echo "| phase | result | time | note |"
    echo "|---|---|---|---|"
    printf '%s\n' "${S_PHASES[@]}"
    echo
    echo "## CUDA tests (ctest -L cuda)"
    echo
    if ((${#S_TESTS[@]})); then printf '%s\n' "${S_TESTS[@]}"; else echo "not run"; fi
    if ((${#S_PARITY[@]})); then
      echo
      echo "Whole-model parity (tests/cuda/parity_test.cu), its messages:"
      echo
      echo '```'
      printf '%s\n' "${S_PARITY[@]}"
      echo '```'
    fi
    if ((${#S_GRAPH[@]})); then
      echo
      echo "The training step as a CUDA graph against the same step run kernel by kernel (tests/cuda/graph_test.cu):"
      echo
      echo '```'
      printf '%s\n' "${S_GRAPH[@]}"
      echo '```'
    fi
    echo
    echo "## GPU benchmark (cdgan_bench_cuda)"
    echo
    if ((${#S_BENCH[@]})); then printf '%s\n' "${S_BENCH[@]}"; else echo "not run"; fi
    echo
    echo "## PyTorch on the same GPU"
    echo
    if ((${#S_TORCH[@]})); then printf '%s\n' "${S_TORCH[@]}"; else echo "not run"; fi
    echo
    echo "## MNIST training run on the GPU"
    echo
    if ((${#S_TRAIN[@]})); then printf '%s\n' "${S_TRAIN[@]}"; else echo "not run"; fi
    echo
    echo "## Not done"
    echo
    if ((${#S_NOTDONE[@]})); then printf -- '- %s\n' "${S_NOTDONE[@]}"; else echo "nothing"; fi
    echo
    echo "Logs: $out/logs/; build tree: $build."
  } >"$summary"
}
trap 'write_summary' EXIT

# ---- 1. machine ---------------------------------------------------------------------------------
gpu="no GPU"
arch=""
if command -v nvidia-smi >/dev/null 2>&1; then
  if q=$(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>/dev/null) ||
    q=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null); then
    q=$(echo "$q" | head -1)
    gpu="$(echo "$q" | cut -d, -f1 | sed 's/^ *//')"
    S_ENV+=("- GPU: $q (nvidia-smi: name, driver, memory, compute capability)")
    cc="$(echo "$q" | cut -d, -f4 | tr -d ' .')"
    [[ "$cc" =~ ^[0-9]+$ ]] && arch="$cc"
  else
    S_ENV+=("- GPU: no GPU (nvidia-smi is installed but answered: $(nvidia-smi 2>&1 | head -1))")
  fi
else
  S_ENV+=("- GPU: no GPU (no nvidia-smi)")
fi
nvcc="$(command -v nvcc || true)"
[[ -z "$nvcc" && -x /usr/local/cuda/bin/nvcc ]] && nvcc=/usr/local/cuda/bin/nvcc
if [[ -z "$nvcc" ]]; then
  S_ENV+=("- nvcc: not found (PATH, /usr/local/cuda/bin)")
  S_NOTDONE+=("everything: no nvcc, so no CUDA code can be built")
  failures=1
  log "no nvcc"
  exit 1
fi
S_ENV+=("- nvcc: $nvcc, $("$nvcc" --version | grep -o 'release [0-9.]*, V[0-9.]*' || echo '?')")
S_ENV+=("- CMake: $(cmake --version 2>/dev/null | head -1 || echo 'not found')")
S_ENV+=("- host compiler: $(c++ --version 2>/dev/null | head -1 || echo '?'), $(nproc) cores, $jobs build jobs")
S_ENV+=("- headers: $headers ($(sed -n 2p "$headers/MANIFEST.txt" 2>/dev/null || echo 'no MANIFEST.txt'))")
S_ENV+=("- source: $root ($(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo 'not a git checkout')$(git -C "$root" diff --quiet 2>/dev/null || echo ', with local changes'))")
[[ "$gpu" == "no GPU" ]] && log "no GPU: building what can be built; the GPU tests and benchmarks will report skipped"

# ---- 2. configure -------------------------------------------------------------------------------
cfgdir() {  # cfgdir NAME: the folder of HEADERS_DIR holding <name>Config.cmake or <name>-config.cmake
  local f
  f=$(find "$headers" \( -iname "$1Config.cmake" -o -iname "$1-config.cmake" \) 2>/dev/null | head -1)
  [[ -n "$f" ]] && dirname "$f"
}
args=(-S "$root" -B "$build" -G "Unix Makefiles" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_COMPILER="$nvcc" -DCDGAN_INSTALL=OFF
  -DCDGAN_BUILD_TESTS=ON -DCDGAN_BUILD_BENCHMARKS=ON)
[[ -n "$arch" ]] && args+=(-DCMAKE_CUDA_ARCHITECTURES="$arch")
missing=()
for pkg in Eigen3 doctest nlohmann_json; do
  d=$(cfgdir "$pkg")
  if [[ -n "$d" ]]; then args+=(-D"${pkg}_DIR=$d"); else missing+=("$pkg"); fi
done
examples=ON
for pkg in CLI11 fmt; do
  d=$(cfgdir "$pkg")
  if [[ -n "$d" ]]; then args+=(-D"${pkg}_DIR=$d"); else examples=OFF; fi
done
args+=("-DCDGAN_BUILD_EXAMPLES=$examples")
[[ $examples == OFF ]] && S_NOTDONE+=("the examples (trainers): CLI11 or fmt is not in $headers")
d=$(cfgdir benchmark)
if [[ -n "$d" ]]; then
  args+=(-Dbenchmark_DIR="$d")
else
  args+=(-Dbenchmark_DIR="$build/no-benchmark")  # so that a system copy is not picked up either
  S_NOTDONE+=("the GPU benchmark: Google Benchmark is not in $headers (pack it with libbenchmark-dev installed)")
fi
zlib_h=$(find "$headers" -name zlib.h | head -1)
zlib_a=$(find "$headers" -name libz.a | head -1)
[[ -n "$zlib_h" && -n "$zlib_a" ]] && args+=(-DZLIB_INCLUDE_DIR="$(dirname "$zlib_h")" -DZLIB_LIBRARY="$zlib_a")
if ((${#missing[@]})); then
  S_NOTDONE+=("everything: ${missing[*]} not in $headers")
  phase configure FAILED 0 "missing in HEADERS_DIR: ${missing[*]}"
  failures=1
  exit 1
fi

log "configure"
s=$(date +%s)
rm -f "$build/CMakeCache.txt"
timeout -k 10 "$(cap 180)" cmake "${args[@]}" >"$out/logs/configure.log" 2>&1
rc=$?
if ((rc != 0)); then
  phase configure "FAILED (exit $rc)" $(($(date +%s) - s)) "logs/configure.log: $(grep -m1 -E 'CMake Error|error' "$out/logs/configure.log" | cut -c1-160)"
  failures=1
  exit 1
fi
cuda_on=$(grep -o 'cdgan: CUDA backend [A-Z]*' "$out/logs/configure.log" | awk '{print $4}')
phase configure ok $(($(date +%s) - s)) "CUDA backend ${cuda_on:-?}, examples $examples, CUDA arch ${arch:-default (90)}"
if [[ "$cuda_on" != ON ]]; then
  S_NOTDONE+=("everything CUDA: CMake did not enable the CUDA backend (logs/configure.log)")
  failures=1
  exit 1
fi

# ---- 3. build -----------------------------------------------------------------------------------
targets_all=$(cmake --build "$build" --target help 2>/dev/null | sed -n 's/^\.\.\. \([^ ]*\).*/\1/p')
has_target() { grep -qx "$1" <<<"$targets_all"; }
targets=(cdgan_cuda_tests)
has_target cdgan_bench_cuda && targets+=(cdgan_bench_cuda)
train_target=0
if has_target cdgan-train-cuda; then
  train_target=1  # built after the others, in the time left (one long nvcc translation unit)
else
  S_NOTDONE+=("the MNIST training run on the GPU: this build has no cdgan-train-cuda target (examples/CMakeLists.txt builds the CPU trainer cdgan-train only)")
fi
exe_tests="$build/tests/cuda/cdgan_cuda_tests"
exe_bench="$build/benchmarks/cdgan_bench_cuda"
exe_train="$build/examples/cdgan-train-cuda"
rm -f "$exe_tests" "$exe_bench" "$exe_train"  # so that an executable present afterwards was linked by this run
log "build ${targets[*]} (-j$jobs)"
s=$(date +%s)
# keep going past a failed target, so that the others are still built; keep 150 s for the runs
timeout -k 10 "$(cap $(($(left) - 150)))" cmake --build "$build" -j "$jobs" --target "${targets[@]}" -- -k \
  >"$out/logs/build.log" 2>&1
rc=$?
build_s=$(($(date +%s) - s))
if ((rc == 0 && train_target)); then
  # The trainer (all presets' networks in one nvcc TU: about 10 minutes on 2 busy CPU cores) may not fit
  # the budget; running out of time here is reported, not counted as a failure of the build.
  log "build cdgan-train-cuda"
  st=$(date +%s)
  timeout -k 10 "$(cap $(($(left) - 100)))" cmake --build "$build" -j "$jobs" --target cdgan-train-cuda \
    >>"$out/logs/build.log" 2>&1
  trc=$?
  if ((trc == 0)); then
    targets+=(cdgan-train-cuda)
  elif ((trc == 124 || trc == 137)); then
    S_NOTDONE+=("the MNIST training run on the GPU: cdgan-train-cuda did not compile within the time budget ($(($(date +%s) - st)) s)")
  else
    targets+=(cdgan-train-cuda)  # listed so that the build phase reports it as not built
    rc=$trc
  fi
  build_s=$(($(date +%s) - s))
fi
built=()
for t in "${targets[@]}"; do
  case $t in
    cdgan_cuda_tests) f=$exe_tests ;;
    cdgan_bench_cuda) f=$exe_bench ;;
    cdgan-train-cuda) f=$exe_train ;;
  esac
  [[ -x "$f" ]] && built+=("$t")
done
if ((rc == 0)); then
  phase build ok "$build_s" "${built[*]}"
else
  what="exit $rc"
  ((rc == 124 || rc == 137)) && what="timed out"
  phase build "FAILED ($what)" "$build_s" "built: ${built[*]:-none}; logs/build.log: $(grep -m1 -E 'error' "$out/logs/build.log" | cut -c1-160)"
  failures=1
fi

# ---- 4. CUDA tests ------------------------------------------------------------------------------
if [[ " ${built[*]} " == *" cdgan_cuda_tests "* ]]; then
  log "CUDA tests"
  s=$(date +%s)
  (cd "$build" && timeout -k 10 "$(cap 240)" ctest -L cuda -V --timeout 200) >"$out/logs/ctest.log" 2>&1
  rc=$?
  t=$(($(date +%s) - s))
  S_TESTS+=("| test | result | time |" "|---|---|---|")
  while IFS= read -r line; do
    name=$(sed -E 's/.*Test +#[0-9]+: ([^ ]+) .*/\1/' <<<"$line")
    res=$(grep -oE 'Passed|\*\*\*Skipped|\*\*\*Failed|\*\*\*Timeout|\*\*\*Not Run|Exception|SEGFAULT' <<<"$line" | head -1 | tr -d '*')
    secs=$(grep -oE '[0-9.]+ sec' <<<"$line")
    S_TESTS+=("| $name | ${res:-?} | $secs |")
  done < <(grep -E '^ *[0-9]+/[0-9]+ Test +#[0-9]+:' "$out/logs/ctest.log")
  passed=$(grep -cE '^ *[0-9]+/[0-9]+ Test .* Passed' "$out/logs/ctest.log")
  skipped=$(grep -cE '^ *[0-9]+/[0-9]+ Test .*Skipped' "$out/logs/ctest.log")
  failed=$(grep -cE '^ *[0-9]+/[0-9]+ Test .*(Failed|Timeout|Exception|SEGFAULT|Not Run)' "$out/logs/ctest.log")
  note="$passed passed, $skipped skipped, $failed failed"
  [[ "$gpu" == "no GPU" ]] && note="$note (no GPU: the GPU test cases print SKIPPED and exit 77)"
  if ((failed > 0 || (rc != 0 && rc != 8))); then
    phase "CUDA tests" FAILED "$t" "$note"
    failures=1
  else
    phase "CUDA tests" ok "$t" "$note"
  fi
  # The parity test's messages (its per-step table), from the verbose log.
  num=$(grep -oE 'Test +#[0-9]+: cuda_parity_test' "$out/logs/ctest.log" | head -1 | grep -oE '[0-9]+')
  if [[ -n "$num" ]]; then
    mapfile -t S_PARITY < <(grep -E "^$num: " "$out/logs/ctest.log" | sed -E "s/^$num: //" |
      grep -vE '^=+$|run with "--help"' | grep -E 'TEST CASE|MESSAGE|step|ERROR|CHECK|values|logged|SKIPPED|doctest' | head -90)
  fi
  # The CUDA graph test's messages (recorded / replayed counts, failures).
  num=$(grep -oE 'Test +#[0-9]+: cuda_graph_test' "$out/logs/ctest.log" | head -1 | grep -oE '[0-9]+')
  if [[ -n "$num" ]]; then
    mapfile -t S_GRAPH < <(grep -E "^$num: " "$out/logs/ctest.log" | sed -E "s/^$num: //" |
      grep -vE '^=+$|run with "--help"' | grep -E 'TEST CASE|MESSAGE|graph|step|ERROR|CHECK|SKIPPED|doctest' | head -60)
  fi
else
  phase "CUDA tests" "not run" 0 "cdgan_cuda_tests was not built"
fi

# ---- 5. GPU benchmark ---------------------------------------------------------------------------
if [[ " ${built[*]} " == *" cdgan_bench_cuda "* ]]; then
  log "GPU benchmark"
  s=$(date +%s)
  timeout -k 10 "$(cap 150)" "$exe_bench" --benchmark_min_time=0.2 --benchmark_out="$out/bench_cuda.json" \
    --benchmark_out_format=json >"$out/logs/bench_cuda.log" 2>&1
  rc=$?
  t=$(($(date +%s) - s))
  if ((rc != 0)); then
    what="exit $rc"
    ((rc == 124 || rc == 137)) && what="timed out"
    phase "GPU benchmark" "FAILED ($what)" "$t" "logs/bench_cuda.log"
    failures=1
  elif [[ "$gpu" == "no GPU" ]]; then
    phase "GPU benchmark" skipped "$t" "no GPU: every benchmark reports 'no CUDA device'"
  else
    phase "GPU benchmark" ok "$t" "bench_cuda.json"
  fi
  if [[ -s "$out/bench_cuda.json" ]] && command -v python3 >/dev/null 2>&1; then
    mapfile -t S_BENCH < <(python3 - "$out/bench_cuda.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
ctx = d.get("context", {})
print(f"GPU {ctx.get('gpu', '?')}, CUDA runtime {ctx.get('cuda_runtime', '?')}")
print()
print("| benchmark | time | counters |")
print("|---|---|---|")
skipped = 0
for b in d.get("benchmarks", []):
    name = b["name"]
    if b.get("error_occurred"):
        skipped += 1
        if skipped <= 3:
            print(f"| {name} | skipped: {b.get('error_message', '')} | |")
        continue
    c = []
    if "cdgan/cublas" in b:
        c.append(f"cdgan/cublas {b['cdgan/cublas']:.3f}")
    for k in ("cublas_us", "TFLOP/s", "GFLOP/step", "replays"):
        if k in b:
            c.append(f"{k} {b[k]:.3g}")
    if "FLOP/s" in b:
        c.append(f"{b['FLOP/s'] / 1e12:.3g} TFLOP/s")
    if "items_per_second" in b and name.startswith("BM_mnist_step"):
        c.append(f"{b['items_per_second']:.3g} steps/s")
    label = f" ({b['label']})" if b.get("label") else ""
    print(f"| {name}{label} | {b['real_time']:.4g} {b.get('time_unit', '')} | {', '.join(c)} |")
if skipped > 3:
    print(f"| ... | {skipped - 3} more skipped | |")
EOF
    )
  fi
else
  phase "GPU benchmark" "not run" 0 "cdgan_bench_cuda not built"
fi

# ---- 6. PyTorch on the GPU ----------------------------------------------------------------------
# The interpreter: $CDGAN_PYTHON, else the first of python3 and /usr/bin/python3 that imports torch.
py="${CDGAN_PYTHON:-}"
if [[ -z "$py" ]]; then
  py=python3
  for cand in python3 /usr/bin/python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import torch' >/dev/null 2>&1; then
      py=$cand
      break
    fi
  done
fi
if ! command -v "$py" >/dev/null 2>&1; then
  S_TORCH+=("not run: no $py")
  phase "PyTorch step" "not run" 0 "no python3"
elif ! "$py" -c 'import torch' >/dev/null 2>&1; then
  S_TORCH+=("not run: \`import torch\` fails in $py")
  phase "PyTorch step" "not run" 0 "no torch"
elif ! "$py" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' >/dev/null 2>&1; then
  S_TORCH+=("not run: torch $("$py" -c 'import torch; print(torch.__version__)' 2>/dev/null) is installed but torch.cuda.is_available() is False")
  phase "PyTorch step" "not run" 0 "torch without a usable GPU"
else
  log "PyTorch step on the GPU"
  s=$(date +%s)
  ok=1
  for be in 512 64; do
    timeout -k 10 "$(cap 90)" "$py" "$root/benchmarks/pytorch_step.py" --device cuda --batch-e $be --steps 20 --warmup 5 \
      --gemm-n "$([[ $be == 512 ]] && echo 8192 || echo 0)" >"$out/pytorch_cuda_e$be.json" 2>"$out/logs/pytorch_cuda_e$be.log" || ok=0
  done
  t=$(($(date +%s) - s))
  if ((ok)); then phase "PyTorch step" ok "$t" "pytorch_cuda_e512.json, pytorch_cuda_e64.json"; else
    phase "PyTorch step" FAILED "$t" "logs/pytorch_cuda_e*.log"
    failures=1
  fi
  mapfile -t S_TORCH < <(python3 - "$out" <<'EOF'
import json, os, sys
out = sys.argv[1]
bench = {}
try:
    for b in json.load(open(os.path.join(out, "bench_cuda.json")))["benchmarks"]:
        if b["name"].startswith("BM_mnist_step_cuda") and not b.get("error_occurred"):
            bench[b["name"]] = b["real_time"] * {"ms": 1, "us": 1e-3, "ns": 1e-6, "s": 1e3}[b.get("time_unit", "ms")]
except (OSError, ValueError, KeyError):
    pass
gpu = "?"
print("| E batch | PyTorch eager (median ms) | cdgan, CUDA graph (ms) | PyTorch / cdgan | cdgan, no graph (ms) | PyTorch / cdgan without the graph | PyTorch GEMM peak |")
print("|---|---|---|---|---|---|---|")
for be in (512, 64):
    try:
        t = json.load(open(os.path.join(out, f"pytorch_cuda_e{be}.json")))
    except (OSError, ValueError):
        print(f"| {be} | failed | | | | | |")
        continue
    if "median_ms" not in t:
        print(f"| {be} | {t.get('error', 'failed')} | | | | | |")
        continue
    ours = bench.get(f"BM_mnist_step_cuda/batch_e:{be}/tf32:0/graph:1/real_time")
    plain = bench.get(f"BM_mnist_step_cuda/batch_e:{be}/tf32:0/graph:0/real_time")
    ratio = f"{t['median_ms'] / ours:.2f}x (target >= 2x)" if ours else "n/a"
    ratio0 = f"{t['median_ms'] / plain:.2f}x" if plain else "n/a"
    peak = f"{t['gemm_gflops'] / 1e3:.1f} TFLOP/s" if t.get("gemm_gflops") else ""
    print(f"| {be} | {t['median_ms']:.2f} | {f'{ours:.2f}' if ours else 'n/a'} | {ratio} | {f'{plain:.2f}' if plain else 'n/a'} | {ratio0} | {peak} |")
    gpu = t.get("gpu", "?")
print()
print(f"Both FP32 (TF32 off), D/G batch 64, the same GPU ({gpu}); cdgan from bench_cuda.json (BM_mnist_step_cuda).")
EOF
  )
fi

# ---- 7. MNIST training run ----------------------------------------------------------------------
if [[ " ${built[*]} " == *" cdgan-train-cuda "* ]]; then
  if [[ "$gpu" == "no GPU" ]]; then
    S_TRAIN+=("not run: no GPU")
    phase "MNIST training" skipped 0 "no GPU"
  elif [[ ! -f "$mnist/train-images-idx3-ubyte" && ! -f "$mnist/train-images-idx3-ubyte.gz" ]]; then
    S_TRAIN+=("not run: no MNIST files in $mnist (set CDGAN_MNIST_DIR)")
    phase "MNIST training" "not run" 0 "no MNIST data"
  else
    log "MNIST training on the GPU"
    s=$(date +%s)
    timeout -k 10 "$(cap 120)" "$exe_train" train --preset mnist --device cuda --iterations 300 --eval-every 300 \
      --log-every 50 --quality-samples 0 --eval-samples 2000 --data-dir "$mnist" --out "$build/train-mnist" \
      >"$out/logs/train.log" 2>&1
    rc=$?
    t=$(($(date +%s) - s))
    S_TRAIN+=('```' "$(grep -E 'step|ACC|done|error' "$out/logs/train.log" | tail -12)" '```')
    if ((rc == 0)); then phase "MNIST training" ok "$t" "300 steps, logs/train.log"; else
      phase "MNIST training" "FAILED (exit $rc)" "$t" "logs/train.log"
      failures=1
    fi
  fi
else
  S_TRAIN+=("not run: cdgan-train-cuda was not built (see what was not done)")
fi

total=$(($(date +%s) - t0))
((total > 480)) && S_NOTDONE+=("the 8-minute limit: this run took $total s ($jobs build jobs on $(nproc) cores; the build took ${build_s:-?} s)")
log "done in $total s: $summary"
write_summary
trap - EXIT
cat "$summary"
exit $((failures > 0))

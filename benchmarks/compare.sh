#!/usr/bin/env bash
# benchmarks/compare.sh — cdgan against PyTorch (the MNIST CD-GAN training step) and scikit-learn
# (k-means + ACC/NMI/ARI), on this machine, in one invocation, at the same thread counts.
#
# Usage: benchmarks/compare.sh [CDGAN_BENCH [OUT_DIR]]
#   CDGAN_BENCH  the cdgan_bench binary (default: build/benchmarks/cdgan_bench; configure with
#                -DCDGAN_BUILD_BENCHMARKS=ON -DCMAKE_BUILD_TYPE=Release and libbenchmark-dev installed).
#                Missing: the cdgan columns read n/a and the PyTorch / scikit-learn sides still run.
#   OUT_DIR      where the raw JSON and report.md go (default: a new /tmp/cdgan_compare.XXXXXX).
# Environment knobs: STEPS (timed PyTorch steps, 10), WARMUP (3), GEMM_N (peak GEMM size, 4096),
#   KMEANS_REPEATS (5), CDGAN_REPS (Google Benchmark repetitions, 1), SCALING (1: run the E-batch
#   scaling table), SKIP_INSTALL (1: do not apt-get), TUNED_CORETYPE (OpenBLAS kernel for "tuned";
#   default SkylakeX where the CPU has AVX-512F, Haswell otherwise), TORCH_TUNED_ARGS (extra
#   arguments of pytorch_step.py in the tuned runs, default "--foreach on"), REPORT_ONLY (1: only
#   print the tables again from the JSON already in OUT_DIR).
#
# What it does:
#  (a) installs what is missing: python3-torch, python3-sklearn (+ scipy, threadpoolctl) and
#      libopenblas0-openmp (without it Debian's torch runs on the reference BLAS);
#  (b) runs cdgan_bench: BM_mnist_step (E batch 512 and 64 at 1 and 2 threads; 128, 256, 1024 at 1
#      thread), one GEMM (BM_gemm/conv128_fwd_b512) and BM_kmeans_metrics, one process per step
#      configuration so that each reports its own peak resident memory;
#  (c) runs benchmarks/pytorch_step.py for the same configurations, twice:
#      "installed" — the environment as the machine has it (OPENBLAS_CORETYPE as set or unset, so
#                    OpenBLAS picks its kernel itself; glibc malloc defaults, MALLOC_* unset);
#      "tuned"     — OPENBLAS_CORETYPE=$TUNED_CORETYPE (OPENBLAS_L2_SIZE unset), and glibc's malloc
#                    kept from returning large temporaries to the kernel on every free
#                    (MALLOC_MMAP_THRESHOLD_=1 GiB, MALLOC_TRIM_THRESHOLD_=4 GiB), plus TORCH_TUNED_ARGS;
#      each PyTorch process also measures a 4096³ fp32 torch.mm, the machine's practical peak;
#  (d) prints markdown tables (also written to OUT_DIR/report.md): step time of each side, the
#      ratio cdgan / tuned PyTorch, GFLOP/s and % of the measured GEMM peak, the 1 → 2 thread
#      speed-up, time against E batch, and k-means + metrics against scikit-learn.
# Benchmarks are run one at a time (a 2-core machine: never two heavy processes together).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
bench="${1:-$root/build/benchmarks/cdgan_bench}"
out="${2:-$(mktemp -d /tmp/cdgan_compare.XXXXXX)}"
mkdir -p "$out"
# Debian's python (python3-torch / python3-sklearn live there), not a pyenv or venv python3.
PY=/usr/bin/python3
STEPS="${STEPS:-10}" WARMUP="${WARMUP:-3}" GEMM_N="${GEMM_N:-4096}"
KMEANS_REPEATS="${KMEANS_REPEATS:-5}" CDGAN_REPS="${CDGAN_REPS:-1}" SCALING="${SCALING:-1}"
TORCH_TUNED_ARGS="${TORCH_TUNED_ARGS:---foreach on}"
if [[ -z "${TUNED_CORETYPE:-}" ]]; then
  if grep -qw avx512f /proc/cpuinfo; then TUNED_CORETYPE=SkylakeX; else TUNED_CORETYPE=Haswell; fi
fi
log() { echo "compare.sh: $*" >&2; }

REPORT_ONLY="${REPORT_ONLY:-0}"
[[ "$REPORT_ONLY" == 1 ]] && SKIP_INSTALL=1

# ---- (a) install -------------------------------------------------------------------------------
if [[ "${SKIP_INSTALL:-0}" != 1 ]]; then
  need=()
  "$PY" -c "import torch" 2>/dev/null || need+=(python3-torch)
  "$PY" -c "import sklearn, scipy, threadpoolctl" 2>/dev/null || need+=(python3-sklearn python3-scipy python3-threadpoolctl)
  dpkg -s libopenblas0-openmp >/dev/null 2>&1 || need+=(libopenblas0-openmp)
  if ((${#need[@]})); then
    sudo=""
    [[ "$(id -u)" != 0 ]] && sudo=sudo
    log "installing ${need[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
  fi
fi

# Runs a command and writes the peak resident memory (MiB) of it and its children to $1.
rss_run() {
  local rss="$1"
  shift
  "$PY" -c 'import resource, subprocess, sys
r = subprocess.run(sys.argv[2:])
open(sys.argv[1], "w").write("%.1f" % (resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024))
sys.exit(r.returncode)' "$rss" "$@"
}
installed_env=(env -u MALLOC_MMAP_THRESHOLD_ -u MALLOC_TRIM_THRESHOLD_ -u MALLOC_TOP_PAD_)
tuned_env=(env -u OPENBLAS_L2_SIZE OPENBLAS_CORETYPE="$TUNED_CORETYPE"
           MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=4294967296)

configs=("512 1" "512 2" "64 1" "64 2")
scaling=()
[[ "$SCALING" == 1 ]] && scaling=("128 1" "256 1" "1024 1")

# ---- (b) cdgan ---------------------------------------------------------------------------------
if [[ "$REPORT_ONLY" == 1 ]]; then
  configs=() scaling=()
elif [[ -x "$bench" ]]; then
  for c in "${configs[@]}" "${scaling[@]}"; do
    read -r be t <<<"$c"
    log "cdgan step, E batch $be, $t thread(s)"
    rss_run "$out/cdgan_step_e${be}_t${t}.rss" "$bench" --benchmark_filter="^BM_mnist_step/batch_e:${be}/threads:${t}/" \
      --benchmark_repetitions="$CDGAN_REPS" --benchmark_out="$out/cdgan_step_e${be}_t${t}.json" \
      --benchmark_out_format=json >/dev/null
  done
  log "cdgan GEMM and k-means"
  "$bench" --benchmark_filter='^BM_gemm/conv128_fwd_b512/|^BM_kmeans_metrics/' \
    --benchmark_out="$out/cdgan_other.json" --benchmark_out_format=json >/dev/null
else
  log "no cdgan_bench at $bench: cdgan columns will read n/a"
fi

# ---- (c) PyTorch and scikit-learn ----------------------------------------------------------------
for c in "${configs[@]}"; do
  read -r be t <<<"$c"
  log "PyTorch step (installed), E batch $be, $t thread(s)"
  "${installed_env[@]}" "$PY" "$here/pytorch_step.py" --threads "$t" --batch-e "$be" --steps "$STEPS" \
    --warmup "$WARMUP" --gemm-n "$GEMM_N" --label installed >"$out/torch_installed_e${be}_t${t}.json"
  log "PyTorch step (tuned: OPENBLAS_CORETYPE=$TUNED_CORETYPE, malloc thresholds, $TORCH_TUNED_ARGS), E batch $be, $t thread(s)"
  # shellcheck disable=SC2086
  "${tuned_env[@]}" "$PY" "$here/pytorch_step.py" --threads "$t" --batch-e "$be" --steps "$STEPS" \
    --warmup "$WARMUP" --gemm-n "$GEMM_N" --label tuned $TORCH_TUNED_ARGS >"$out/torch_tuned_e${be}_t${t}.json"
done
for c in "${scaling[@]}"; do
  read -r be t <<<"$c"
  log "PyTorch step (tuned), E batch $be, $t thread(s)"
  # shellcheck disable=SC2086
  "${tuned_env[@]}" "$PY" "$here/pytorch_step.py" --threads "$t" --batch-e "$be" --steps "$STEPS" \
    --warmup "$WARMUP" --gemm-n 0 --label tuned $TORCH_TUNED_ARGS >"$out/torch_tuned_e${be}_t${t}.json"
done
for t in 1 2; do
  [[ "$REPORT_ONLY" == 1 ]] && break
  log "scikit-learn k-means, $t thread(s)"
  "${tuned_env[@]}" "$PY" "$here/sklearn_kmeans.py" --threads "$t" --repeats "$KMEANS_REPEATS" --label tuned \
    >"$out/sklearn_t${t}.json"
done

# ---- (d) report ----------------------------------------------------------------------------------
"$PY" - "$out" "$bench" "$TUNED_CORETYPE" "$TORCH_TUNED_ARGS" <<'EOF' | tee "$out/report.md"
import glob, json, os, platform, subprocess, sys

out, bench, coretype, tuned_args = sys.argv[1:5]

def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

def gb_entry(doc, prefix):
    """The median aggregate of a Google Benchmark run if repeated, else its single entry."""
    if not doc:
        return None
    rows = [b for b in doc["benchmarks"] if b["name"].startswith(prefix)]
    med = [b for b in rows if b.get("aggregate_name") == "median"]
    it = [b for b in rows if b.get("run_type", "iteration") == "iteration"]
    return (med or it or [None])[0]

def ms(b):
    scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b["time_unit"]]
    return b["real_time"] * scale

def cdgan_step(be, t):
    b = gb_entry(load(f"{out}/cdgan_step_e{be}_t{t}.json"), f"BM_mnist_step/batch_e:{be}/threads:{t}/")
    if not b:
        return None
    rss = None
    try:
        rss = float(open(f"{out}/cdgan_step_e{be}_t{t}.rss").read())
    except (OSError, ValueError):
        pass
    return {"ms": ms(b), "gflop": b.get("GFLOP/step"), "rss": rss}

def torch_step(kind, be, t):
    return load(f"{out}/torch_{kind}_e{be}_t{t}.json")

def f(v, fmt="{:.1f}"):
    return "n/a" if v is None else fmt.format(v)

lines = []
p = lines.append
model = subprocess.run(["sh", "-c", "lscpu | sed -n 's/^Model name: *//p'"], capture_output=True, text=True).stdout.strip()
flags = open("/proc/cpuinfo").read()
simd = [x for x in ("avx2", "fma", "avx512f", "avx512_bf16") if f" {x}" in flags]
any_torch = next((torch_step(k, 512, 1) for k in ("tuned", "installed") if torch_step(k, 512, 1)), None) or {}
inst = torch_step("installed", 512, 1) or {}
p("# cdgan vs PyTorch: MNIST CD-GAN training step\n")
p(f"Machine: {model}, {os.cpu_count()} CPUs, SIMD: {', '.join(simd)}; Python {platform.python_version()}, "
  f"torch {any_torch.get('torch', 'n/a')}, {any_torch.get('openblas_config', 'BLAS n/a')}.")
p(f"PyTorch *installed*: default environment (OPENBLAS_CORETYPE={inst.get('env', {}).get('OPENBLAS_CORETYPE')!s}, "
  f"OpenBLAS kernel {inst.get('openblas_core', 'n/a')}; glibc malloc defaults). "
  f"PyTorch *tuned*: OPENBLAS_CORETYPE={coretype} (kernel {any_torch.get('openblas_core', 'n/a')}), "
  f"MALLOC_MMAP_THRESHOLD_=1 GiB, MALLOC_TRIM_THRESHOLD_=4 GiB, pytorch_step.py {tuned_args}.")
p("Same networks, batch sizes (D/G 64), losses (WGAN-GP with the exact penalty, all-positives L_c, L_z) and Adam; "
  "GFLOP/step from the layer shapes (benchmarks/flops.hpp); peak = a 4096³ fp32 torch.mm in the same PyTorch "
  "process at the same thread count (the best of the installed and tuned runs).\n")

p("| threads | E batch | GFLOP/step | cdgan ms | PyTorch installed ms | PyTorch tuned ms | cdgan / tuned | "
  "cdgan GFLOP/s (% peak) | PyTorch tuned GFLOP/s (% peak) | GEMM peak GFLOP/s | peak RSS MiB cdgan / PyTorch tuned |")
p("|---|---|---|---|---|---|---|---|---|---|---|")
for t in (1, 2):
    for be in (512, 64):
        c, ti, tt = cdgan_step(be, t), torch_step("installed", be, t), torch_step("tuned", be, t)
        peaks = [d["gemm_gflops"] for d in (ti, tt) if d and d.get("gemm_gflops")]
        peak = max(peaks) if peaks else None
        gflop = (tt or ti or {}).get("gflop_per_step") or (c or {}).get("gflop")
        cg = gflop / c["ms"] * 1e3 if c and gflop else None
        tg = gflop / tt["median_ms"] * 1e3 if tt and gflop else None
        pct = lambda g: f"{g:.1f} ({100 * g / peak:.0f} %)" if g and peak else f(g)
        p(f"| {t} | {be} | {f(gflop, '{:.2f}')} | {f(c and c['ms'])} | {f(ti and ti['median_ms'])} | "
          f"{f(tt and tt['median_ms'])} | {f(c['ms'] / tt['median_ms'] if c and tt else None, '{:.2f}')} | "
          f"{pct(cg)} | {pct(tg)} | {f(peak)} | {f(c and c['rss'], '{:.0f}')} / "
          f"{f(tt and tt['peak_rss_mib_training'], '{:.0f}')} |")

p("\n## 1 → 2 threads speed-up (step time at 1 thread / at 2 threads)\n")
p("| E batch | cdgan | PyTorch installed | PyTorch tuned |")
p("|---|---|---|---|")
for be in (512, 64):
    c1, c2 = cdgan_step(be, 1), cdgan_step(be, 2)
    row = [f(c1["ms"] / c2["ms"] if c1 and c2 else None, "{:.2f}×")]
    for k in ("installed", "tuned"):
        a, b = torch_step(k, be, 1), torch_step(k, be, 2)
        row.append(f(a["median_ms"] / b["median_ms"] if a and b else None, "{:.2f}×"))
    p(f"| {be} | " + " | ".join(row) + " |")

p("\n## Step time against E batch (1 thread)\n")
p("| E batch | GFLOP/step | cdgan ms | PyTorch tuned ms | cdgan / tuned | cdgan GFLOP/s | PyTorch tuned GFLOP/s |")
p("|---|---|---|---|---|---|---|")
for be in (64, 128, 256, 512, 1024):
    c, tt = cdgan_step(be, 1), torch_step("tuned", be, 1)
    if not c and not tt:
        continue
    gflop = (tt or {}).get("gflop_per_step") or (c or {}).get("gflop")
    p(f"| {be} | {f(gflop, '{:.2f}')} | {f(c and c['ms'])} | {f(tt and tt['median_ms'])} | "
      f"{f(c['ms'] / tt['median_ms'] if c and tt else None, '{:.2f}')} | "
      f"{f(gflop / c['ms'] * 1e3 if c and gflop else None)} | {f(gflop / tt['median_ms'] * 1e3 if tt and gflop else None)} |")

other = load(f"{out}/cdgan_other.json")
gemm = [(t, gb_entry(other, f"BM_gemm/conv128_fwd_b512/threads:{t}/")) for t in (1, 2)]
if any(g for _, g in gemm):
    p("\ncdgan's GEMM 128×25088×1024 (the E step's conv<128>, BM_gemm/conv128_fwd_b512): " +
      ", ".join(f"{g.get('FLOP/s', 0) / 1e9:.1f} GFLOP/s at {t} thread(s)" for t, g in gemm if g) + ".")
mismatch = []
for t in (1, 2):
    for be in (64, 128, 256, 512, 1024):
        c, tt = cdgan_step(be, t), torch_step("tuned", be, t)
        if c and tt and c["gflop"] and abs(c["gflop"] - tt["gflop_per_step"]) > 1e-3 * tt["gflop_per_step"]:
            mismatch.append(f"E {be}, {t} thread(s): cdgan {c['gflop']:.3f}, PyTorch {tt['gflop_per_step']:.3f}")
if mismatch:
    p("\nWARNING: the two sides count different GFLOP/step (" + "; ".join(mismatch) + ").")

p("\n# cdgan vs scikit-learn: k-means (k = 10, n_init = 10) + ACC / NMI / ARI on 10,000 × 40 features\n")
p("| threads | cdgan ms | scikit-learn ms | scikit-learn / cdgan | cdgan ACC / NMI / ARI | scikit-learn ACC / NMI / ARI |")
p("|---|---|---|---|---|---|")
for t in (1, 2):
    c = gb_entry(other, f"BM_kmeans_metrics/threads:{t}")
    s = load(f"{out}/sklearn_t{t}.json")
    cs = f"{c['acc']:.4f} / {c['nmi']:.4f} / {c['ari']:.4f}" if c else "n/a"
    ss = f"{s['acc']:.4f} / {s['nmi']:.4f} / {s['ari']:.4f}" if s else "n/a"
    p(f"| {t} | {f(c and ms(c))} | {f(s and s['median_ms'])} | "
      f"{f(s['median_ms'] / ms(c) if c and s else None, '{:.2f}')} | {cs} | {ss} |")
c, s = gb_entry(other, "BM_kmeans_metrics/threads:1"), load(f"{out}/sklearn_t1.json")
if c and s and abs(c["data_checksum"] - s["data_checksum"]) > 1e-3 * abs(s["data_checksum"]):
    p(f"\nWARNING: the two sides' data differ (checksums {c['data_checksum']} vs {s['data_checksum']}).")
p(f"\nRaw results: {out}")
print("\n".join(lines))
EOF

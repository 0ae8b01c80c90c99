#!/usr/bin/env python3
"""results-table.py — one markdown row per training run, from the runs' metrics.jsonl files.

    python3 scripts/results-table.py runs/mnist runs/fashion-few-labels ...   [--step N]

For each run directory: the last evaluation (or the one at --step N) with ACC (Hungarian), purity,
NMI, ARI, the classifier Fréchet distance (not the Inception FID) against the real-vs-real floor,
the intra-class diversity ratio (min / mean over codes; below 0.5 is a collapse), the classifier
consistency, the step and the seconds since the run started. Standard library only.
"""
import json
import sys
from pathlib import Path


def row(run: Path, step):
    lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if l.strip()]
    if not lines:
        return f"| {run.name} | (no evaluation yet) |"
    m = lines[-1] if step is None else next((l for l in lines if l.get("step") == step), None)
    if m is None:
        return f"| {run.name} | (no evaluation at step {step}) |"

    def f(key, fmt="{:.3f}"):
        v = m.get(key)
        return fmt.format(v) if isinstance(v, (int, float)) else "n/a"

    fd = f"{f('fd_overall', '{:.0f}')} / {f('fd_real_floor', '{:.1f}')}" if "fd_overall" in m else "n/a"
    div = f"{f('diversity_ratio_min', '{:.2f}')} / {f('diversity_ratio_mean', '{:.2f}')}" if "diversity_ratio_min" in m else "n/a"
    return (f"| {run.name} | {m.get('step')} | {f('acc')} | {f('purity')} | {f('nmi')} | {f('ari')} | {fd} | {div} | "
            f"{f('classifier_consistency', '{:.2f}')} | {f('seconds', '{:.0f}')} |")


def main():
    args = sys.argv[1:]
    step = None
    if "--step" in args:
        i = args.index("--step")
        step = int(args[i + 1])
        del args[i:i + 2]
    if not args:
        sys.exit(__doc__)
    print("| run | step | ACC | purity | NMI | ARI | classifier FD / real floor | diversity min / mean | consistency | seconds |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for a in args:
        print(row(Path(a), step))


if __name__ == "__main__":
    main()

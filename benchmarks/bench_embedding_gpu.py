"""GPU k-means for the embedding sweep: exactness on planted clusters and time on a 151936 × 2560 matrix.

Usage (CUDA machine): python benchmarks/bench_embedding_gpu.py --out results.json
Runs the same coarse-to-fine k sequence as `submit` (without Ray: one k after another on the one GPU).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.metrics import adjusted_rand_score, calinski_harabasz_score  # noqa: E402

from tpa_dist.compute.embedding import coarse_grid, fine_grid, fit_k  # noqa: E402
from tpa_dist.sources.synth.writer import _trained_blocks  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=151936)
    ap.add_argument("--cols", type=int, default=2560)
    ap.add_argument("--out", default="embedding_gpu.json")
    args = ap.parse_args()
    dev = "cuda" if torch.cuda.is_available() else "torch-cpu"
    out: dict[str, object] = {"device": torch.cuda.get_device_name() if dev == "cuda" else dev}
    rng = np.random.default_rng(3)
    centers = rng.standard_normal((6, 64)) * 10
    planted = np.concatenate([c + rng.standard_normal((500, 64)) for c in centers]).astype(np.float32)
    res = fit_k(planted, 6, 0, 2000, dev)
    out["planted_ari"] = adjusted_rand_score(np.repeat(np.arange(6), 500), res["labels"])
    out["planted_f_equals_ch"] = abs(res["f_stat"] / calinski_harabasz_score(planted, res["labels"]) - 1) < 1e-9
    x = np.concatenate(list(_trained_blocks("emb", args.rows, args.cols, 0)))
    per_k = {}
    t0 = time.perf_counter()
    coarse = coarse_grid(2, 100)
    for k in coarse:
        per_k[k] = fit_k(x, k, 0, 2000, dev)
    best = max(per_k.values(), key=lambda r: r["f_stat"])["k"]
    for k in fine_grid(coarse, best):
        per_k[k] = fit_k(x, k, 0, 2000, dev)
    out["sweep_wall_s"] = time.perf_counter() - t0
    out["ks"] = sorted(per_k)
    out["per_k_seconds"] = {k: r["seconds"] for k, r in sorted(per_k.items())}
    out["chosen_k"] = max(per_k.values(), key=lambda r: r["f_stat"])["k"]
    print(json.dumps(out, indent=1))
    Path(args.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

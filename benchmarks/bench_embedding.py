"""Time the embedding sweep on a qwen3-4b-shaped token embedding (151936 × 2560, bf16) on this machine.

Usage: python benchmarks/bench_embedding.py [--rows 151936 --cols 2560] [--out benchmarks/results/embedding.json]
The default settings of `submit` (k 2..100, coarse-to-fine, mini-batch k-means above 20,000 rows), on a local
Ray with all cores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=151936)
    ap.add_argument("--cols", type=int, default=2560)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "embedding_151936x2560.json"))
    args = ap.parse_args()
    from tpa_dist.checkpoint.catalog import open_model
    from tpa_dist.checkpoint.vocab import load_vocab
    from tpa_dist.compute.embedding import EmbeddingSettings, find_embeddings
    from tpa_dist.compute.embedding_analysis import analyze_embedding
    from tpa_dist.sources.synth.tokenizers import write_tokenizer
    from tpa_dist.sources.synth.writer import TensorSpec, _write_shard

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _write_shard(
            folder / "model.safetensors",
            [TensorSpec("model.embed_tokens.weight", (args.rows, args.cols), "BF16")],
            seed=0,
        )
        (folder / "config.json").write_text(json.dumps({"vocab_size": args.rows, "tie_word_embeddings": True}))
        write_tokenizer(folder, "bytelevel", args.rows)
        catalog = open_model(folder)
        (info,) = find_embeddings(catalog)
        t0 = time.perf_counter()
        res = analyze_embedding(info, load_vocab(catalog.root), EmbeddingSettings())
        wall = time.perf_counter() - t0
    out = {
        "rows": args.rows,
        "cols": args.cols,
        "cpus": os.cpu_count(),
        "wall_s": wall,
        "chosen_k": res.chosen_k,
        "elbow_k": res.elbow_k,
        "ks": [r["k"] for r in res.sweep],
        "per_k_seconds": {r["k"]: r["seconds"] for r in res.sweep},
        "method": res.sweep[0]["method"],
        "example_representatives": res.clusters[0]["representatives"][:5],
    }
    Path(args.out).write_text(json.dumps(out, indent=1, ensure_ascii=False))
    print(json.dumps(out, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()

"""The embedding step's cost against a baseline checkout, side by side in one run: `analyze_embedding` (read,
geometry, k sweep, gap statistic, representatives and token classes — whatever the checkout does) in a fresh
process per run, alternating baseline and this checkout, on all-MiniLM-L6-v2's trained embedding and on a
151,936 × 2,560 bf16 synthetic one (qwen3-4b's shape). Medians of --runs.

Usage:
    git worktree add /tmp/before <commit>      # e.g. the commit before issue 27 (33efe96)
    python benchmarks/bench_embedding_step.py --before /tmp/before [--runs 3]
    # -> benchmarks/results/embedding_step.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RUN = """
import json, sys, time
from tpa_dist.checkpoint.catalog import open_model
from tpa_dist.checkpoint.vocab import load_vocab
from tpa_dist.compute.embedding_analysis import analyze_embedding
from tpa_dist.settings import EmbeddingSettings
folder = sys.argv[1]
info = next(t for t in open_model(folder).tensors() if t.param_name == sys.argv[2])
vocab = load_vocab(folder)
t0 = time.perf_counter()
res = analyze_embedding(info, vocab, EmbeddingSettings())
print(json.dumps({"wall_s": time.perf_counter() - t0, "phases": getattr(res, "phases", {})}))
"""


def big_folder(rows: int = 151_936, cols: int = 2_560) -> Path:
    """The synthetic qwen3-4b-shaped embedding with a byte-level tokenizer, in tpa-dist's cache, written once."""
    from tpa_dist.sources.resolve import cache_dir
    from tpa_dist.sources.synth.tokenizers import write_tokenizer
    from tpa_dist.sources.synth.writer import TensorSpec, _write_shard

    folder = cache_dir() / "bench" / f"embedding-{rows}x{cols}"
    if not (folder / "tokenizer.json").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        _write_shard(folder / "model.safetensors", [TensorSpec("model.embed_tokens.weight", (rows, cols), "BF16")], 0)
        (folder / "config.json").write_text(json.dumps({"vocab_size": rows, "tie_word_embeddings": True}))
        write_tokenizer(folder, "bytelevel", rows)
    return folder


def one(src: Path, folder: Path, name: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src))
    out = subprocess.run(
        [sys.executable, "-c", RUN, str(folder), name], env=env, capture_output=True, text=True, check=True, cwd="/"
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    from benchmarks.common import minilm_folder

    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True, type=Path, help="a source checkout of the baseline commit")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "embedding_step.json"))
    args = ap.parse_args()
    cases = {"big 151936x2560": (big_folder(), "model.embed_tokens.weight")}
    minilm = minilm_folder()
    if minilm is not None:
        cases = {"all-MiniLM-L6-v2": (minilm, "embeddings.word_embeddings.weight"), **cases}
    result = {}
    for case, (folder, name) in cases.items():
        runs: dict[str, list[dict]] = {"before": [], "after": []}
        for _ in range(args.runs):  # alternating, so drift on a busy machine hits both alike
            runs["before"].append(one(args.before, folder, name))
            runs["after"].append(one(ROOT, folder, name))
        med = {k: statistics.median(r["wall_s"] for r in v) for k, v in runs.items()}
        result[case] = {
            "median_s": med,
            "ratio_after_to_before": med["after"] / med["before"],
            "runs": runs,
        }
        print(
            f"{case}: before {med['before']:.1f} s, after {med['after']:.1f} s, ratio {med['after'] / med['before']:.2f}"
        )
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

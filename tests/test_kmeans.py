"""Embedding clustering that is right on realistic and trained embeddings: converged k-means (every stored inertia
within 1 % of scikit-learn's exact KMeans on the same rows), inertia non-increasing in k, the planted k chosen,
special tokens left out and listed, degenerate partitions named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.cluster import KMeans

from tpa_dist.checkpoint.catalog import open_model
from tpa_dist.checkpoint.vocab import load_vocab
from tpa_dist.compute.embedding import EmbeddingSettings, find_embeddings, sweep_ks
from tpa_dist.compute.embedding_analysis import analyze_embedding
from tpa_dist.compute.kmeans import Data, FreshSeeds, n_init

from .conftest import minilm_folder, write_safetensors


def realistic_embedding(n: int = 50_000, d: int = 48, k: int = 6, outliers: int = 300, seed: int = 0) -> np.ndarray:
    """Planted clusters of unequal sizes and spreads, a large shared mean offset (as trained embeddings have) and
    a few hundred far outlier rows in random directions."""
    rng = np.random.default_rng(seed)
    weights = np.array([0.35, 0.25, 0.15, 0.12, 0.08, 0.05])[:k]
    sizes = (weights / weights.sum() * (n - outliers)).astype(int)
    sizes[0] += n - outliers - sizes.sum()
    centers = rng.standard_normal((k, d)) * 3.0
    offset = rng.standard_normal(d) * 40.0
    parts = [c + rng.standard_normal((m, d)) * rng.uniform(0.6, 1.2) for c, m in zip(centers, sizes)]
    far = rng.standard_normal((outliers, d))
    far *= 3.0 * np.sqrt(d) / np.linalg.norm(far, axis=1, keepdims=True)
    return rng.permutation(np.concatenate(parts + [far]) + offset).astype(np.float32)


def sklearn_inertia(x: np.ndarray, k: int, seed: int) -> float:
    """scikit-learn's exact KMeans(n_init=1), its inertia recomputed in float64 from its labels."""
    labels = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(x).labels_
    data = Data(x)
    centers = np.asarray([x[labels == c].mean(axis=0, dtype=np.float64) for c in range(k)]) - data.mean
    return data.inertia(centers, labels)


def _check_sweep(x: np.ndarray, results: list[dict], seed: int) -> None:
    inertias = [r["inertia"] for r in results]
    assert all(b <= a for a, b in zip(inertias, inertias[1:])), inertias  # non-increasing in k
    for r in results:
        reference = sklearn_inertia(x, r["k"], seed)
        assert r["inertia"] <= 1.01 * reference, (r["k"], r["inertia"], reference)


def test_realistic_embedding_planted_k_and_exact_inertia():
    x = realistic_embedding()
    results = sweep_ks(x, EmbeddingSettings(k_min=2, k_max=16, seed=0))
    best = max(results, key=lambda r: r["f_stat"])
    assert best["k"] == 6 and len(x) > 20_000
    assert all(r["method"] == "kmeans" for r in results)
    _check_sweep(x, results, seed=0)


def test_trained_minilm_embedding_is_clustered_exactly():
    """all-MiniLM-L6-v2's word embeddings (BERT naming, 30,522 × 384, trained), shipped by a PyPI package."""
    folder = minilm_folder()
    catalog = open_model(folder)
    (info,) = find_embeddings(catalog)
    assert info.param_name == "embeddings.word_embeddings.weight" and info.shape == (30522, 384)
    vocab = load_vocab(folder)
    res = analyze_embedding(info, vocab, EmbeddingSettings(k_min=2, k_max=12, seed=0))
    reasons = {r: sum(1 for v in res.excluded.values() if v == r) for r in set(res.excluded.values())}
    assert reasons.get("special") == 5 and reasons.get("unused") == 994, reasons  # [PAD]…[MASK], [unused0..993]
    assert res.rows == 30522 - len(res.excluded)
    mask_id = next(i for i, t in vocab.items() if t == "[MASK]")
    assert res.excluded[mask_id] == "special"
    for c in res.clusters:
        assert not any(t.startswith("[") and t.endswith("]") for t in c["representatives"]), c["representatives"]
    from tpa_dist.compute.embedding import load_embedding

    x = load_embedding(info)[res.row_ids]
    _check_sweep(x, res.sweep, seed=0)


def _bert_vocab_model(folder: Path, seed: int = 0) -> Path:
    """A BERT-style model whose [PAD] [UNK] [CLS] [SEP] [MASK] and [unused0..99] rows sit far from the words."""
    rng = np.random.default_rng(seed)
    tokens = ["[PAD]"] + [f"[unused{i}]" for i in range(100)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = [f"w{i}" for i in range(900)]
    vocab = tokens + words
    x = np.concatenate(
        [
            rng.standard_normal((len(tokens), 16)) * 0.05 + 30.0,  # never trained, far away
            rng.standard_normal((900, 16)),
        ]
    ).astype(np.float32)
    folder.mkdir(parents=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (folder / "config.json").write_text(json.dumps({"architectures": ["BertModel"], "vocab_size": len(vocab)}))
    write_safetensors(folder / "model.safetensors", {"embeddings.word_embeddings.weight": ("F32", x, x.shape)})
    return folder


def test_special_and_unused_rows_are_left_out_and_listed(tmp_path):
    folder = _bert_vocab_model(tmp_path / "bert")
    (info,) = find_embeddings(open_model(folder))
    vocab = load_vocab(folder)
    res = analyze_embedding(info, vocab, EmbeddingSettings(k_min=2, k_max=6, seed=0, representatives=5))
    assert len(res.excluded) == 105 and res.rows == 900
    assert {vocab[i] for i, r in res.excluded.items() if r == "special"} == {
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
    }
    assert sum(1 for r in res.excluded.values() if r == "unused") == 100
    reps = [t for c in res.clusters for t in c["representatives"]]
    assert reps and all(t.startswith("w") for t in reps)
    settings = EmbeddingSettings(k_min=2, k_max=6, seed=0, include_special=True, metric="euclidean")
    included = analyze_embedding(info, vocab, settings)
    assert included.rows == 1005 and not included.excluded
    # with them in, the far-away specials form their own cluster (euclidean): exactly what the default prevents
    assert any(c["size"] == 105 for c in included.clusters)


def test_degenerate_choice_is_named():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal((5000, 8)), rng.standard_normal((3, 8)) + 200.0]).astype(np.float32)
    from tpa_dist.compute.embedding import degeneracy

    results = sweep_ks(x, EmbeddingSettings(k_min=2, k_max=8, seed=0))
    best = max(results, key=lambda r: r["f_stat"])
    text = degeneracy(best, results, len(x))
    assert best["k"] == 2 and text is not None
    assert "smallest cluster holds 3 of 5,003 rows" in text and "edge of the swept range" in text


def test_fresh_starts_of_a_sweep_are_prefixes_of_shared_chains(monkeypatch):
    """The fresh starts of every k are the first k centres of shared greedy k-means++ chains (n_init(k) of them),
    seeded with one pass over the rows per centre of the longest chain — not one per centre of every k."""
    x = realistic_embedding(n=3_000, d=16)
    data = Data(x)
    passes = []
    original = Data.dist_to
    monkeypatch.setattr(Data, "dist_to", lambda self, p: passes.append(len(p)) or original(self, p))
    seeds = FreshSeeds(data, 2, 40, seed=0)
    assert len(seeds.chains) == n_init(2) and len(seeds.chains[0]) == 40
    assert len(passes) == len(seeds.chains) + 39  # each chain's first centre, then one pass per added centre
    for k in (2, 5, 11, 40):
        starts = seeds.starts(k)
        assert starts.shape == (n_init(k), k, 16)
        for i, start in enumerate(starts):
            np.testing.assert_array_equal(start, seeds.chains[i][:k])
            rows = {tuple(np.round(c, 9)) for c in start}
            assert len(rows) == k  # k distinct rows of the data
    assert seeds.starts(41) is None


def test_row_threads_give_the_same_sweep_as_one_thread():
    """The passes split into row spans on threads (RowThreads) change only where the float32 chunk sums of the first
    pass start and end: the same partitions (up to numbering), inertias to 1e-6 and silhouettes to 1e-9 as the one-thread sweep."""
    from concurrent.futures import ThreadPoolExecutor

    from sklearn.metrics import adjusted_rand_score

    from tpa_dist.compute.embedding import _sweep
    from tpa_dist.compute.kmeans import RowThreads

    x = realistic_embedding(n=9_000, d=24, seed=3)
    settings = EmbeddingSettings(k_min=2, k_max=12, silhouette_sample=800)
    alone = _sweep(Data(x), settings, "cpu")
    with ThreadPoolExecutor(3) as pool:
        spans = _sweep(Data(x, RowThreads(pool, 3)), settings, "cpu")
    assert [r["k"] for r in spans] == [r["k"] for r in alone]
    for a, s in zip(alone, spans):
        assert s["inertia"] == pytest.approx(a["inertia"], rel=1e-6)
        assert s["silhouette"] == pytest.approx(a["silhouette"], rel=1e-9)
        assert adjusted_rand_score(s["labels"], a["labels"]) == 1.0  # (starts that tie may number clusters apart)


def test_row_spans_cover_every_row_once():
    from concurrent.futures import ThreadPoolExecutor

    from tpa_dist.compute.kmeans import RowThreads, each_span

    with ThreadPoolExecutor(4) as pool:
        threads = RowThreads(pool, 4)
        for n in (0, 1, 7, 8, 9, 1001):
            spans = each_span(threads, n, lambda r0, r1: (r0, r1))
            covered = [i for r0, r1 in spans for i in range(r0, r1)]
            assert covered == list(range(n)), n
            assert len(spans) == 1 if n < 8 else 2 < len(spans) <= 4
    assert each_span(None, 5, lambda r0, r1: (r0, r1)) == [(0, 5)]

"""Embedding clustering: F is Calinski–Harabasz, planted clusters are found, tokens decode to strings."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats
from sklearn.cluster import KMeans
from sklearn.metrics import calinski_harabasz_score

from tpa_dist.checkpoint.catalog import open_model
from tpa_dist.compute.embedding import EmbeddingSettings, anova_f, elbow, find_embeddings, sweep_ks
from tpa_dist.compute.embedding_analysis import analyze_embedding
from tpa_dist.sources.synth.tokenizers import load_vocab


@pytest.mark.parametrize("k", [2, 5, 17])
def test_f_equals_calinski_harabasz(k):
    rng = np.random.default_rng(k)
    x = rng.standard_normal((700, 12)).astype(np.float32)
    labels = KMeans(n_clusters=k, random_state=0, n_init=2).fit_predict(x)
    f_stat, p_value, ssb, ssw = anova_f(x, labels, k)
    assert f_stat == pytest.approx(calinski_harabasz_score(x, labels), rel=1e-9)
    assert p_value == pytest.approx(stats.f.sf(f_stat, k - 1, len(x) - k), rel=1e-9)
    # SSW is the inertia about the cluster means, computed independently
    ref_ssw = sum(((x[labels == c] - x[labels == c].mean(0)) ** 2).sum() for c in range(k))
    assert ssw == pytest.approx(ref_ssw, rel=1e-6)


def _planted(n_clusters: int, per: int = 120, dim: int = 24, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_clusters, dim)) * 10
    return np.concatenate([c + rng.standard_normal((per, dim)) for c in centers]).astype(np.float32)


@pytest.mark.parametrize("planted", [4, 7])
def test_planted_clusters_choose_planted_k(planted):
    x = _planted(planted)
    results = sweep_ks(x, EmbeddingSettings(k_min=2, k_max=30, seed=0))
    best = max(results, key=lambda r: r["f_stat"])
    assert best["k"] == planted
    ks = [r["k"] for r in results]
    assert ks == sorted(set(ks)) and planted in ks
    assert elbow(ks, [r["inertia"] for r in results]) == planted


def test_finds_token_embeddings_not_positions(synth_models):
    bert = find_embeddings(open_model(synth_models["tiny-bert"]))
    assert [t.param_name for t in bert] == ["bert.embeddings.word_embeddings.weight"]
    llama = find_embeddings(open_model(synth_models["tiny-llama"]))
    assert [t.param_name for t in llama] == ["model.embed_tokens.weight", "lm_head.weight"]  # untied head too
    qwen = find_embeddings(open_model(synth_models["tiny-qwen3"]))
    assert [t.param_name for t in qwen] == ["model.embed_tokens.weight"]  # tied
    gpt2 = find_embeddings(open_model(synth_models["tiny-gpt2"]))
    assert [t.param_name for t in gpt2] == ["wte.weight"]


def test_vocab_decoding(synth_models):
    bpe = load_vocab(synth_models["tiny-gpt2"])
    doc = json.loads((synth_models["tiny-gpt2"] / "tokenizer.json").read_text())
    g_tokens = [t for t in doc["model"]["vocab"] if t.startswith("Ġ")]
    assert g_tokens and bpe[doc["model"]["vocab"][g_tokens[0]]] == " " + g_tokens[0][1:]  # 'Ġ' is a space
    assert bpe[doc["model"]["vocab"]["!"]] == "!"
    wp = load_vocab(synth_models["tiny-bert"])
    lines = (synth_models["tiny-bert"] / "vocab.txt").read_text().splitlines()
    sub = next(i for i, t in enumerate(lines) if t.startswith("##"))
    assert wp[sub] == lines[sub] and wp.scheme == "wordpiece"  # as the vocabulary writes it, `##` kept
    sp = load_vocab(synth_models["tiny-llama"])
    assert sp[3 + 0x41] == "A" and any(t.startswith(" ") for t in sp.values())  # <0x41> byte, '▁' space


@pytest.mark.parametrize("preset", ["tiny-gpt2", "tiny-bert"])
def test_representatives_are_real_token_strings(synth_models, preset):
    catalog = open_model(synth_models[preset])
    (info,) = find_embeddings(catalog)
    res = analyze_embedding(
        info, load_vocab(catalog.root), EmbeddingSettings(k_min=2, k_max=12, seed=0, representatives=5)
    )
    vocab = load_vocab(synth_models[preset])
    assert 2 <= res.chosen_k <= 12 and len(res.clusters) == res.chosen_k
    assert sum(c["size"] for c in res.clusters) == res.rows
    for c in res.clusters:
        assert c["representatives"] == [vocab[i] for i in c["ids"]]
        assert not any(t.startswith("[unused") or t == "[PAD]" for t in c["representatives"])
    assert res.labels.shape == (res.rows,)


def test_unigram_and_missing_tokenizer(tmp_path):
    doc = {
        "model": {"type": "Unigram", "vocab": [["<unk>", 0.0], ["▁the", -1.5], ["ing", -2.0]]},
        "decoder": {"type": "Metaspace", "replacement": "▁"},
    }
    (tmp_path / "tokenizer.json").write_text(json.dumps(doc))
    assert load_vocab(tmp_path) == {0: "<unk>", 1: " the", 2: "ing"}
    (tmp_path / "tokenizer.json").write_text("{not json")
    assert load_vocab(tmp_path) is None  # malformed and no vocab.txt: ids stand in for tokens


def test_torch_kmeans_path_recovers_planted_partition():
    """The GPU workers' exact torch k-means (run here on the CPU) finds planted clusters exactly."""
    from sklearn.metrics import adjusted_rand_score

    from tpa_dist.compute.embedding import fit_k

    x = _planted(5, per=80)
    truth = np.repeat(np.arange(5), 80)
    res = fit_k(x, 5, seed=0, silhouette_sample=500, device="torch-cpu")
    assert res["method"] == "kmeans_torch_cpu"
    assert adjusted_rand_score(truth, res["labels"]) == 1.0
    assert res["f_stat"] == pytest.approx(calinski_harabasz_score(x, res["labels"]), rel=1e-9)
    assert res["silhouette"] > 0.8


@pytest.mark.parametrize("threads", [0, 3])
@pytest.mark.parametrize("k", [2, 7, 40])
def test_silhouette_equals_scikit_learn(k, threads):
    from concurrent.futures import ThreadPoolExecutor

    from sklearn.metrics import silhouette_score

    from tpa_dist.compute.embedding import silhouette
    from tpa_dist.compute.kmeans import RowThreads

    rng = np.random.default_rng(k)
    x = rng.standard_normal((600, 9)).astype(np.float32)
    labels = rng.integers(0, k, 600)
    labels[0] = k  # a cluster of one row scores 0, as scikit-learn defines it
    with ThreadPoolExecutor(max(threads, 1)) as pool:
        spans = RowThreads(pool, threads) if threads else None  # rows in spans on threads, or all at once
        assert silhouette(x, labels, spans) == pytest.approx(silhouette_score(x.astype(np.float64), labels), rel=1e-9)


def test_a_sweeps_silhouettes_share_one_sample_distance_matrix(monkeypatch):
    """Every k of a sweep scores the same fixed sample of rows: its distances are computed once and each k's
    silhouette still equals scikit-learn's on that sample."""
    from sklearn.metrics import silhouette_score

    from tpa_dist.compute import embedding
    from tpa_dist.compute.kmeans import Data

    rng = np.random.default_rng(5)
    data = Data(rng.standard_normal((900, 7)).astype(np.float32))
    calls = []
    real = embedding.distances
    monkeypatch.setattr(embedding, "distances", lambda x, threads=None: calls.append(len(x)) or real(x, threads))
    for k in (2, 5, 9):
        labels = rng.integers(0, k, data.n)
        got = embedding._silhouette(data, labels, seed=3, sample=400)
        pick = np.random.default_rng(3).permutation(data.n)[:400]
        want = silhouette_score(data.x[pick].astype(np.float64), labels[pick])
        assert got == pytest.approx(want, rel=1e-9)
    assert calls == [400]

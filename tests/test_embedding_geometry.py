"""The embedding's geometry against float64 numpy on trained weights, token classes, and what a submit stores and
draws (the gap statistic's verdict: test_embedding_verdict.py)."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest
from safetensors.numpy import load_file
from scipy.special import logsumexp

import tpa_dist
from tpa_dist.checkpoint.token_classes import token_class
from tpa_dist.compute import embedding_geometry

from .conftest import minilm_folder


@pytest.fixture(scope="module")
def minilm_rows():
    w = load_file(str(minilm_folder() / "model.safetensors"))["embeddings.word_embeddings.weight"]
    return w[999:9999]  # 9,000 trained rows after MiniLM's [unusedNN] block: the n² pair reference stays seconds


def test_geometry_equals_float64_numpy_on_trained_weights(minilm_rows, monkeypatch):
    monkeypatch.setattr(embedding_geometry, "BLOCK_ROWS", 4096)  # several blocks: the accumulation is exercised
    ids = np.arange(999, 999 + len(minilm_rows))
    monkeypatch.setattr(embedding_geometry, "WORK", 1e12)  # the exact path (the sampled one is tested below)
    got = embedding_geometry.geometry(minilm_rows, ids).columns
    x = minilm_rows.astype(np.float64)
    n, d = x.shape

    def pairwise_mean_cosine(rows: np.ndarray) -> float:
        """The direct definition: every pair's cosine (in row blocks: the n × n matrix would be 7 GB), diagonal out."""
        u = rows / np.linalg.norm(rows, axis=1, keepdims=True)
        total = sum(float((u[i : i + 2048] @ u.T).sum()) for i in range(0, len(u), 2048))
        return (total - float((u * u).sum())) / (n * (n - 1))

    assert got["mean_cosine"] == pytest.approx(pairwise_mean_cosine(x), rel=1e-9)
    c = x - x.mean(axis=0)
    assert got["mean_cosine_centered"] == pytest.approx(pairwise_mean_cosine(c), rel=1e-7)
    lam = np.sort(np.linalg.eigvalsh(np.cov(x, rowvar=False)))[::-1]
    assert got["top_pc_share"] == pytest.approx(lam[0] / lam.sum(), rel=1e-9)
    assert got["participation_ratio"] == pytest.approx(lam.sum() ** 2 / (lam**2).sum(), rel=1e-9)
    assert got["top_pc_shares"] == pytest.approx(list(lam[:10] / lam.sum()), rel=1e-9)
    # Mu & Viswanath: Z(c) over the eigenvectors of XᵀX, and after removing the mean and the top D = d/100 PCs
    vecs = np.linalg.eigh(x.T @ x)[1]
    z = logsumexp(x @ vecs, axis=0)
    assert got["isotropy"] == pytest.approx(np.exp(z.min() - z.max()), rel=1e-9)
    top = np.linalg.svd(c, full_matrices=False)[2][: round(d / 100)]
    post = c - (c @ top.T) @ top
    zp = logsumexp(post @ np.linalg.eigh(post.T @ post)[1], axis=0)
    assert got["all_but_top_d"] == 4
    # the post-processed WᵀW has the covariance's eigenvectors beyond the top D, but near-equal eigenvalues let any
    # two eigensolvers pick different bases of a near-degenerate subspace (I(W) depends on the basis): 1e-3
    assert got["isotropy_all_but_top"] == pytest.approx(np.exp(zp.min() - zp.max()), rel=1e-3)
    norms = np.linalg.norm(x, axis=1)
    assert got["norm_mean"] == pytest.approx(norms.mean(), rel=1e-12) and got["norm_max"] == pytest.approx(norms.max())
    assert got["norm_std"] == pytest.approx(norms.std(), rel=1e-9)
    # what the literature leads one to expect of a trained embedding: some shared direction, spread over many
    assert 0 < got["mean_cosine"] < 0.2 and got["isotropy"] < got["isotropy_all_but_top"] <= 1


def test_large_embeddings_sample_only_what_needs_a_gram(minilm_rows, monkeypatch):
    """Above WORK multiply-adds: the cosines, norms and trace stay exact, the top components come from Lanczos on the
    exact covariance, Σλ² from the unbiased pair estimate over a 5,000-row sample, the isotropies over that sample."""
    ids = np.arange(len(minilm_rows))
    exact = embedding_geometry.geometry(minilm_rows, ids).columns
    monkeypatch.setattr(embedding_geometry, "WORK", 1e9)
    big = embedding_geometry.geometry(minilm_rows, ids).columns
    assert exact["sample_rows"] is None and big["sample_rows"] == 5000
    for key in ("mean_cosine", "mean_cosine_centered", "norm_mean", "norm_std"):
        assert big[key] == pytest.approx(exact[key], rel=1e-9), key
    assert big["top_pc_share"] == pytest.approx(exact["top_pc_share"], rel=1e-4)
    assert big["top_pc_shares"] == pytest.approx(exact["top_pc_shares"][:2], rel=1e-4)
    assert big["participation_ratio"] == pytest.approx(exact["participation_ratio"], rel=0.05)
    assert big["isotropy"] == pytest.approx(exact["isotropy"], abs=0.05)


@pytest.mark.parametrize(
    ("text", "scheme", "expected"),
    [
        ("##ing", "wordpiece", "subword"),
        ("walk", "wordpiece", "word_initial"),
        ("##と", "wordpiece", "cjk"),
        ("と", "wordpiece", "cjk"),
        ("1984", "wordpiece", "digit"),
        ("##9", "wordpiece", "digit"),
        ("?!", "wordpiece", "punctuation"),
        ("##", "wordpiece", "punctuation"),
        ("привет", "wordpiece", "other_script"),
        (" the", "byte_level", "word_initial"),
        ("ing", "byte_level", "subword"),
        (" 42", "byte_level", "digit"),
        ("한국", "sentencepiece", "cjk"),
        ("éte", "sentencepiece", "subword"),
        ("word", None, "latin"),
        (None, "wordpiece", None),
    ],
)
def test_token_classes(text, scheme, expected):
    assert token_class(text, scheme) == expected


def test_submit_stores_geometry_composition_and_draws_the_projection(tmp_path):
    job = tpa_dist.Job.create(
        models=(f"minilm={minilm_folder()}",),
        db=str(tmp_path / "e.duckdb"),
        output_dir=str(tmp_path / "out"),
        progress=False,
        k_min=2,
        k_max=12,
    )
    summary = tpa_dist.submit(job)
    assert summary.ok, summary.describe()
    with duckdb.connect(job.db, read_only=True) as con:
        geo = con.execute("SELECT rows, mean_cosine, isotropy FROM embedding_geometry").fetchall()
        choice = con.execute(
            "SELECT metric, chosen_k, recommended_k, rule, phase_seconds FROM embedding_choice"
        ).fetchone()
        comp = con.execute("SELECT sum(count), count(DISTINCT cluster) FROM embedding_cluster_composition").fetchone()
        classes = dict(
            con.execute(
                "SELECT token_class, count(*) FROM embedding_assignments WHERE cluster IS NOT NULL GROUP BY 1"
            ).fetchall()
        )
        sub = con.execute("SELECT token FROM embedding_assignments WHERE token_id = 29001").fetchone()[0]
        gaps = con.execute("SELECT count(*) FROM embedding_gap").fetchone()[0]
        points = con.execute("SELECT count(*) FROM embedding_projection").fetchone()[0]
    ((rows, _, _),) = geo
    assert choice[0] == "cosine" and choice[3] == "max_f" and choice[2] is None and gaps == 12  # k = 1 … 12
    assert comp == (rows, choice[1]) and sum(classes.values()) == rows
    assert classes["subword"] > 1000 and classes["word_initial"] > 10000 and classes["cjk"] > 100
    assert sub == "##jhl"  # as the vocabulary writes it
    assert set(__import__("json").loads(choice[4])) >= {"read", "geometry", "sweep", "gap", "representatives"}
    assert points == 5000
    png = tmp_path / "out" / "minilm" / "embedding_projection.png"
    assert png.stat().st_size > 20_000
    md = (tmp_path / "out" / "report.md").read_text()
    assert "## Embedding geometry" in md and "recommended_k" in md
    # the headline is the gap statistic's verdict with what shapes the embedding, not the degenerate argmax-F k
    summary_row = md.split("## Summary by model", 1)[1].split("\n## ", 1)[0]
    assert "no preferred number (structure at every scale)" in summary_row and "| 2 (degenerate) |" in summary_row
    findings = md.split("## Findings", 1)[1].split("\n## ", 1)[0]
    assert "| minilm | embedding embeddings.word_embeddings.weight | no preferred number of clusters" in findings
    assert "what shapes it: mean cosine between tokens" in findings and "token classes: word_initial" in findings
    assert "## How many clusters the embedding has" in md and "same for seeds 0–9" in md
    models = md.split("## Models", 1)[1].split("\n## ", 1)[0]
    assert "| f32 | 22713216 |" in models  # no torch_dtype in MiniLM's config: the stored dtype; buffers not counted


def test_spearman_equals_scipys_with_and_without_ties():
    """The norm–id rank correlation without importing scipy.stats (0.7 s of a fresh worker's embedding step)."""
    from scipy.stats import spearmanr

    from tpa_dist.compute.embedding_geometry import spearman

    rng = np.random.default_rng(0)
    for trial in range(100):
        n = int(rng.integers(3, 400))
        a = rng.integers(0, 5, n).astype(float) if trial % 2 else rng.standard_normal(n)  # many ties, or none
        b = rng.permutation(n).astype(float)
        if np.ptp(a) == 0:
            continue
        assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)

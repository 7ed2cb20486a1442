"""Every metric against independent float64 numpy/scipy formulas, and alpha against weightwatcher."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import scipy.linalg as sl

from tpa_dist.compute.heavytail import heavy_tail_metrics
from tpa_dist.compute.metrics import spectral_metrics


def _reference(w: np.ndarray) -> dict[str, float]:
    """Straight from the definitions in the README, written independently of tpa_dist."""
    s = sl.svdvals(w)
    rows, cols = w.shape
    tol = s.max() * max(rows, cols) * np.finfo(np.float32).eps
    rank = int(np.sum(s > tol))
    e = s**2
    out = {
        "design_rank": min(rows, cols),
        "actual_rank": rank,
        "rank_ratio": rank / min(rows, cols),
        "spectral_norm": s[0],
        "frobenius_norm": np.linalg.norm(w, "fro"),
        "nuclear_norm": np.linalg.norm(w, "nuc"),
        "stable_rank": e.sum() / e[0],
        "condition_number": s[0] / s[-1],
    }
    for level in (50, 90, 95, 99):
        k = 1
        while e[:k].sum() < level / 100 * e.sum():
            k += 1
        out[f"energy_rank_{level}"] = k
    out["svd_90_percent_rank"] = out["energy_rank_90"]
    out["svd_90_percent_ratio"] = out["energy_rank_90"] / min(rows, cols)
    p = s / s.sum()
    out["effective_rank"] = math.exp(-sum(x * math.log(x) for x in p if x > 0))
    q = e / e.sum()
    out["entropy"] = -sum(x * math.log(x) for x in q if x > 0) / math.log(rank)
    out["lambda_max"] = e[0]
    out["log_norm"] = math.log10(e.sum())
    out["log_spectral_norm"] = math.log10(e[0])
    return out


def _matrices():
    rng = np.random.default_rng(11)
    heavy = rng.standard_t(3, (400, 160)) * 0.05
    low = rng.standard_normal((90, 7)) @ rng.standard_normal((7, 120))
    gauss = rng.standard_normal((64, 256))
    return {"heavy": heavy, "low_rank7": low, "gauss_wide": gauss}


@pytest.mark.parametrize("name", ["heavy", "low_rank7", "gauss_wide"])
def test_spectral_metrics_match_definitions(name):
    w = _matrices()[name]
    got = spectral_metrics(sl.svdvals(w), *w.shape)
    ref = _reference(w)
    for key, value in ref.items():
        if key == "condition_number" and name == "low_rank7":
            assert got[key] is None or got[key] > 1e10  # σ_min is rounding noise
            continue
        assert got[key] == pytest.approx(value, rel=1e-9), key
    if name == "low_rank7":
        assert got["actual_rank"] == 7


def test_quantile_is_numpys_bit_for_bit():
    """The SNR's quartiles (metrics.quantile, without numpy's quantile machinery) equal numpy.quantile exactly, on
    spectra of every length (1 and 2 included), with ties and across magnitudes."""
    from tpa_dist.compute.metrics import quantile

    rng = np.random.default_rng(8)
    for i in range(3000):
        n = int(rng.integers(1, 700)) if i > 2 else i + 1
        values = (
            rng.integers(0, 4, n).astype(float) if i % 4 == 0 else rng.standard_normal(n) * 10.0 ** rng.uniform(-8, 8)
        )
        ascending = np.sort(values)
        for q in (0.25, 0.75, 0.5, 0.1, 0.999):
            assert quantile(ascending, q) == np.quantile(ascending, q), (n, q)


def test_zero_matrix():
    got = spectral_metrics(np.zeros(8), 10, 8)
    assert got["actual_rank"] == 0 and got["svd_90_percent_rank"] == 0
    assert got["alpha"] is None and got["stable_rank"] is None and got["condition_number"] is None


def test_alpha_mle_and_ks_on_exact_power_law():
    """On eigenvalues drawn from a pure power law the fitted alpha recovers the exponent."""
    rng = np.random.default_rng(5)
    lam = (1 - rng.random(4000)) ** (-1 / (2.5 - 1))  # Pareto, alpha = 2.5, xmin = 1
    got = heavy_tail_metrics(np.sqrt(lam))
    assert got["alpha"] == pytest.approx(2.5, abs=0.1)
    # the reported D and alpha are the MLE / KS statistic for the chosen xmin
    tail = np.sort(lam[lam >= got["xmin"]])
    n = len(tail)
    alpha = 1 + n / np.sum(np.log(tail / got["xmin"]))
    assert got["alpha"] == pytest.approx(alpha, rel=1e-9)
    d = np.max(np.abs(1 - (tail / got["xmin"]) ** (1 - alpha) - np.arange(n) / n))
    assert got["D"] == pytest.approx(d, rel=1e-9)
    assert got["num_pl_spikes"] == n
    assert got["alpha_weighted"] == pytest.approx(alpha * math.log10(lam.max()), rel=1e-9)
    assert got["log_alpha_norm"] == pytest.approx(math.log10(np.sum(lam**alpha)), rel=1e-9)


@pytest.mark.parametrize("preset", ["tiny-llama", "tiny-qwen3", "tiny-bert", "tiny-gpt2"])
def test_alpha_matches_weightwatcher_on_the_same_folder(synth_models, preset):
    """weightwatcher's analyze() on the same safetensors folder: alpha within 0.02, same xmin and norms."""
    import weightwatcher as ww

    from tpa_dist.checkpoint.catalog import open_model
    from tpa_dist.checkpoint.reader import read_all
    from tpa_dist.compute.tasks import tasks_for_tensor

    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    folder = synth_models[preset]
    details = ww.WeightWatcher(model=str(folder)).analyze(randomize=False, plot=False, mp_fit=False)
    theirs = {row["name"]: row for _, row in details.iterrows()}
    compared = 0
    for info in open_model(folder).tensors():
        name = info.param_name.removesuffix(".weight")
        if info.ndim != 2 or name not in theirs or theirs[name]["alpha"] < 0:
            continue
        (task,) = tasks_for_tensor("m", "r", info)
        ours = heavy_tail_metrics(sl.svdvals(read_all(task.region)))
        assert ours["alpha"] == pytest.approx(theirs[name]["alpha"], abs=0.02), name
        assert ours["xmin"] == pytest.approx(theirs[name]["xmin"], rel=1e-3), name
        assert ours["log_spectral_norm"] == pytest.approx(theirs[name]["log_spectral_norm"], rel=1e-6)
        assert ours["log_norm"] == pytest.approx(theirs[name]["log_norm"], rel=1e-6)
        assert ours["alpha_weighted"] == pytest.approx(theirs[name]["alpha_weighted"], abs=0.05)
        compared += 1
    assert compared >= 8


def test_alpha_matches_weightwatcher_on_heavy_tailed_matrices():
    """Larger heavy-tailed and low-rank matrices (standard, not small-N, fits) as torch Linear layers."""
    import torch
    import weightwatcher as ww

    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    mats = list(_matrices().values())
    model = torch.nn.Sequential(*[torch.nn.Linear(w.shape[1], w.shape[0], bias=False) for w in mats])
    for layer, w in zip(model, mats):
        layer.weight.data = torch.from_numpy(w).double()
    details = ww.WeightWatcher(model=model).analyze(randomize=False, plot=False, mp_fit=False)
    alphas = list(details["alpha"])
    assert len(alphas) == 3
    for a, w in zip(alphas, mats):
        assert heavy_tail_metrics(sl.svdvals(w))["alpha"] == pytest.approx(a, abs=0.02)


def test_ks_scan_torch_equals_numpy():
    """The GPU worker's torch KS scan (run here on the CPU) equals the numpy one exactly enough."""
    from tpa_dist.compute.heavytail import _alphas, _ks_numpy, _ks_torch

    x = np.sort(np.random.default_rng(2).pareto(2.0, 3000) + 1)
    logx, n, alphas = _alphas(x)
    assert np.allclose(_ks_torch(logx, n, alphas, "cpu"), _ks_numpy(logx, n, alphas), rtol=0, atol=1e-13)

"""Plans from the measurements, checked against the tools they stand in for, on real trained weights: Spectrum's SNR
and its unfreeze rule, AlphaPruning's sparsities, low-rank plans from the stored spectra."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.linalg as sl
import yaml
from click.testing import CliRunner
from safetensors.numpy import load_file

import tpa_dist
from tpa_dist.cli import main
from tpa_dist.report.plans import alpha_sparsities, lowrank_plan, prune_plan, unfreeze_yaml

from .conftest import minilm_folder


@pytest.fixture(scope="module")
def minilm_db(tmp_path_factory):
    """all-MiniLM-L6-v2 (trained, BERT names) analyzed once: matrices only."""
    work = tmp_path_factory.mktemp("plans")
    job = tpa_dist.Job.create(
        models=(f"minilm={minilm_folder()}",),
        db=str(work / "m.duckdb"),
        output_dir=str(work / "out"),
        progress=False,
        embedding=False,
    )
    assert tpa_dist.submit(job).ok
    return work / "m.duckdb"


def spectrum_reference(weights: np.ndarray) -> float:
    """Spectrum's `calculate_snr_for_layer` (cognitivecomputations/spectrum), transliterated to float64 numpy."""
    s = sl.svdvals(weights.astype(np.float64))
    q75, q25 = np.quantile(s, 0.75), np.quantile(s, 0.25)
    sigma = (q75 - q25) / 1.349
    n, m = weights.shape[-2:]
    beta = n / m if n < m else m / n
    threshold = sigma * np.sqrt((1 + np.sqrt(beta)) ** 2)
    signal = s[s > threshold].sum() if (s > threshold).any() else 0.0
    noise = s[s <= threshold].sum() if (s <= threshold).any() else 1.0
    snr = signal / noise if noise != 0 else float("inf")
    return snr / s[0]


def test_snr_is_spectrums_definition_on_trained_weights(minilm_db):
    weights = load_file(str(minilm_folder() / "model.safetensors"))
    con = tpa_dist.connect(minilm_db)
    stored = dict(con.execute("SELECT param_name, snr FROM matrix_analysis WHERE kind = 'matrix'").fetchall())
    con.close()
    assert len(stored) == 40  # 6 layers × 6, the word, position and token-type embeddings, the pooler
    for name, snr in stored.items():
        assert snr == pytest.approx(spectrum_reference(weights[name]), rel=1e-9), name


def _spectrums_selection(layer_snr: dict[str, tuple[str, float]], top_percent: float) -> dict[str, list[str]]:
    """Spectrum's `generate_unfrozen_params_yaml` selection, from (module -> (type, snr)) in module order."""
    by_type: dict[str, list[tuple[str, float]]] = {}
    for name, (layer_type, snr) in layer_snr.items():
        by_type.setdefault(layer_type, []).append((name, snr))
    return {
        t: [n for n, _ in sorted(layers, key=lambda x: x[1], reverse=True)[: int(len(layers) * top_percent / 100)]]
        for t, layers in by_type.items()
    }


@pytest.mark.parametrize("top_percent", [25, 50, 75])
def test_unfreeze_selects_what_spectrums_rule_selects(minilm_db, top_percent):
    con = tpa_dist.connect(minilm_db)
    rows = con.execute(
        "SELECT module, weight_type, snr FROM matrix_snr ORDER BY layer_index NULLS LAST, param_name"
    ).fetchall()
    con.close()
    expected = _spectrums_selection({m: (t, s) for m, t, s in rows}, top_percent)
    text, _ = unfreeze_yaml(minilm_db, top_percent)
    listed = yaml.safe_load(text)["unfrozen_parameters"]
    assert listed[0] == "^embeddings.word_embeddings.weight$"  # the model's own input embedding, always
    assert sorted(listed[1:]) == sorted(n for names in expected.values() for n in names)
    assert any(t == "attention.self.query" for _, t, _ in rows) and len(listed) > 1


def test_prune_plan_is_alphapruning(minilm_db):
    """AlphaPruning's `ww_sparsity` (linear mapping, then scaled), transliterated; and the plan's guarantees."""
    con = tpa_dist.connect(minilm_db)
    rows = con.execute(
        "SELECT param_name, alpha, rows * cols FROM matrix_analysis WHERE kind = 'matrix' AND status = 'ok' "
        "AND layer_index IS NOT NULL AND alpha IS NOT NULL ORDER BY layer_index, param_name"
    ).fetchall()
    con.close()
    alphas, params = np.array([r[1] for r in rows]), np.array([r[2] for r in rows], dtype=np.float64)
    s1, s2, target = 1 - 0.2, 1 + 0.2, 0.6
    ratios = (alphas - alphas.min()) / (alphas.max() - alphas.min()) * (s2 - s1) + s1
    published = ratios * (params.sum() * target / (params * ratios).sum())
    plan = prune_plan(minilm_db, target, 0.2)
    got = np.array([m["sparsity"] for m in plan["matrices"]])
    assert [m["param_name"] for m in plan["matrices"]] == [r[0] for r in rows]
    np.testing.assert_allclose(got, published, rtol=1e-12)
    assert plan["mean_sparsity"] == pytest.approx(target, abs=1e-12) and plan["clipped"] == 0
    order = np.argsort(alphas, kind="stable")
    assert np.all(np.diff(got[order]) >= -1e-15)  # non-decreasing in alpha
    # a mapping that would leave [0, 1]: clipped, the rest scaled again, the mean kept
    harsh = alpha_sparsities(list(alphas), list(params), 0.95, 0.9)
    assert all(0 <= s <= 1 for s in harsh) and max(harsh) == 1.0
    assert np.dot(harsh, params) / params.sum() == pytest.approx(0.95, abs=1e-12)


def test_lowrank_plan_from_the_stored_spectra(minilm_db):
    con = tpa_dist.connect(minilm_db)
    spectra = {
        name: np.asarray(sv) for name, sv in con.execute("SELECT param_name, singular_values FROM spectra").fetchall()
    }
    con.close()
    plan = lowrank_plan(minilm_db, energy=0.8)
    for m in plan["matrices"]:
        sv = spectra[m["param_name"]]
        energy = np.cumsum(sv**2)
        assert m["rank"] == int(np.searchsorted(energy, 0.8 * energy[-1]) + 1), m
        dense = m["rows"] * m["cols"]
        assert m["saved"] == max(0, dense - m["rank"] * (m["rows"] + m["cols"])) and m["params"] == dense
    fitted = lowrank_plan(minilm_db, budget=0.3)
    above = lowrank_plan(minilm_db, energy=min(1.0, fitted["energy"] + 2e-4))
    assert 0.5 < fitted["energy"] < 1 and fitted["kept_fraction"] <= 0.3 < above["kept_fraction"]
    assert lowrank_plan(minilm_db, energy=1.0)["kept_fraction"] == 1.0  # every σ kept: nothing factored


def test_plan_commands_write_files_a_trainer_reads(minilm_db, tmp_path):
    runner = CliRunner()
    out = tmp_path / "unfrozen.yaml"
    res = runner.invoke(main, ["plan", "unfreeze", "--db", str(minilm_db), "--top-percent", "50", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert yaml.safe_load(out.read_text())["unfrozen_parameters"][0] == "^embeddings.word_embeddings.weight$"
    res = runner.invoke(
        main, ["plan", "prune", "--db", str(minilm_db), "--sparsity", "0.5", "--out", str(tmp_path / "p.json")]
    )
    doc = json.loads((tmp_path / "p.json").read_text())
    assert res.exit_code == 0 and {"param_name", "alpha", "params", "sparsity"} <= set(doc["matrices"][0])
    res = runner.invoke(
        main, ["plan", "lowrank", "--db", str(minilm_db), "--energy", "0.9", "--out", str(tmp_path / "l.csv")]
    )
    assert res.exit_code == 0 and (tmp_path / "l.csv").read_text().startswith("param_name,layer_index")
    res = runner.invoke(
        main, ["plan", "prune", "--db", str(minilm_db), "--sparsity", "1.5", "--out", str(tmp_path / "x")]
    )
    assert res.exit_code == 2 and "1.5" in res.output


HOSTILE_NAMES = [
    "x\n- injected",
    "a: b",
    "c # d",
    "'q\"",
    "- lead",
    "!!python/object/apply:os.system [id]",
    "{x: 1}",
    "e\u202ef",
    "\x1b]0;title\x07",
]


def test_unfreeze_yaml_reads_back_as_exactly_the_names_whatever_they_are(tmp_path):
    """Tensor names are data: a newline, `: `, `#`, quotes, a leading `- `, a YAML tag, a flow mapping, bidi and
    terminal control characters — `yaml.safe_load` of the plan gives back every name as it is, nothing injected."""
    from .conftest import quiet_job, write_safetensors

    rng = np.random.default_rng(0)
    tensors = {
        f"model.layers.{i}.mlp.{h}.weight": ("F32", rng.standard_normal((24, 16)).astype(np.float32), (24, 16))
        for i, h in enumerate(HOSTILE_NAMES)
    }
    tensors["model.embed_tokens.weight"] = ("F32", rng.standard_normal((50, 16)).astype(np.float32), (50, 16))
    folder = tmp_path / "m"
    folder.mkdir()
    write_safetensors(folder / "model.safetensors", tensors)
    (folder / "config.json").write_text(json.dumps({"num_hidden_layers": len(HOSTILE_NAMES)}))
    assert tpa_dist.submit(quiet_job(tmp_path / "h.duckdb", (f"h={folder}",), tmp_path / "out", embedding=False)).ok
    text, _ = unfreeze_yaml(tmp_path / "h.duckdb", 100)
    listed = yaml.safe_load(text)["unfrozen_parameters"]
    expected = {f"model.layers.{i}.mlp.{h}" for i, h in enumerate(HOSTILE_NAMES)}
    assert expected <= set(listed) and all(isinstance(x, str) for x in listed)
    assert len(listed) == len(set(listed)) == len(expected) + 2  # the embedding's ^…$ entry and its module


def test_plan_out_follows_the_rules_of_every_output_file(minilm_db, tmp_path):
    """Only a regular file is replaced, only with --force; a missing folder is made; a FIFO stays a FIFO."""
    import os
    import stat

    runner = CliRunner()

    def plan(out, *more):
        args = ["plan", "unfreeze", "--db", str(minilm_db), "--out", str(out), *more]
        return runner.invoke(main, args)

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    res = plan(fifo, "--force")
    assert res.exit_code == 2 and res.output.strip() == f"error: {fifo} exists and is not a regular file"
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    existing = tmp_path / "u.yaml"
    existing.write_text("mine")
    res = plan(existing)
    assert res.exit_code == 2 and "exists (--force overwrites it)" in res.output and existing.read_text() == "mine"
    assert plan(existing, "--force").exit_code == 0 and "unfrozen_parameters" in existing.read_text()
    nested = tmp_path / "new" / "deeper" / "u.yaml"
    res = plan(nested)
    assert res.exit_code == 0 and nested.is_file(), res.output

"""A report that leads with what differs between models (issue 37): a planted low-rank change in one matrix is the first
finding, findings true of every model are said once, the ESD panels show the same matrix, the over-training figure
only for declared checkpoints, one rule for the looked-up matrices, and the report of a database grows with it."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import tpa_dist
from tpa_dist.db.query import run_sql
from tpa_dist.jobs import Job

from .conftest import quiet_job

CHANGED = "model.layers.1.self_attn.q_proj.weight"
NEGATIVE_ZERO = re.compile(r"-0(\.0*)?(?![0-9.])")  # "-0", "-0.000": never shown


def _with_planted_change(src: Path, dst: Path) -> Path:
    """A copy of `src` whose only difference is a rank-4 term added to CHANGED (the shard's other tensors as they
    were, bytes and all)."""
    shutil.copytree(src, dst)
    index = json.loads((dst / "model.safetensors.index.json").read_text())
    shard = dst / index["weight_map"][CHANGED]
    with open(shard, "rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    tensors = load_file(shard)
    stored = tensors[CHANGED]
    w = stored.astype(np.float64)
    rng = np.random.default_rng(7)
    low_rank = rng.standard_normal((w.shape[0], 4)) @ rng.standard_normal((4, w.shape[1]))
    tensors[CHANGED] = (w + 0.5 * np.linalg.norm(w) / np.linalg.norm(low_rank) * low_rank).astype(stored.dtype)
    save_file(tensors, shard, metadata=header.get("__metadata__"))
    return dst


@pytest.fixture(scope="module")
def pair(synth_models, tmp_path_factory):
    """`a` (tiny-llama) submitted first, then `b` (a with the planted change) into the same database, each with its
    report into the same outputs folder."""
    work = tmp_path_factory.mktemp("differences")
    b_folder = _with_planted_change(synth_models["tiny-llama"], work / "b")
    db, out = work / "p.duckdb", work / "outputs"
    for spec in (f"a={synth_models['tiny-llama']}", f"b={b_folder}"):
        job = Job.create(models=(spec,), db=str(db), output_dir=str(out), progress=False, embedding=False)
        summary = tpa_dist.submit(job)
        assert summary.ok, summary.describe()
        assert "start-up" not in summary.describe()  # the Python API's caller ran before it: not this run's start-up
    return str(db), out, b_folder, synth_models["tiny-llama"]


def test_a_planted_low_rank_change_is_the_first_finding(pair):
    db, out, _, _ = pair
    rows = run_sql(db, None, "findings", ["a", "b"]).rows
    model, finding, detail = rows[0]
    assert (model, finding) == ("b", "differs from a") and detail.startswith(CHANGED + ": stable rank"), rows[0]
    assert "(−" in detail or "(+" in detail, detail
    changed = [r for r in rows if r[1] == "differs from a"]
    assert (
        len(changed) == 2
        and changed[1][2] == "block types with changed matrices (largest mean change first): q_proj 1 of 2"
    )
    # what holds for both is said once, not once per model
    shared = [r for r in rows if r[0] == "all models"]
    assert shared and not any(r[0] in ("a", "b") and (r[1], r[2]) in {(s[1], s[2]) for s in shared} for r in rows)
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "Models: a, b" in md and not (out / "previous").exists()  # the second submit added b to the report
    first_table_row = md.split("| model_id | finding | detail |", 1)[1].splitlines()[2]
    assert first_table_row.startswith("| b | differs from a | " + CHANGED.replace("_", "_")), first_table_row


def test_identical_models_differ_in_no_matrix_and_compare_lists_no_zero_difference(pair, tmp_path):
    from click.testing import CliRunner

    from tpa_dist.cli import main

    db, _, _, a_folder = pair
    summary = tpa_dist.submit(quiet_job(db, (f"a2={a_folder}",), tmp_path / "o", embedding=False))
    assert summary.ok, summary.describe()
    rows = run_sql(db, None, "findings", ["a", "a2"]).rows
    assert rows[0][:2] == ("a2", "differs from a") and rows[0][2].startswith("no matrix differs: all "), rows[0]
    res = CliRunner().invoke(main, ["compare", "a", "a2", "--db", db])
    assert res.exit_code == 0, res.output
    assert not NEGATIVE_ZERO.search(res.output) and "+0.000" not in res.output, res.output
    assert res.output.count("none (equal in every block and depth)") == 3, res.output
    res = CliRunner().invoke(main, ["compare", "a", "b", "--db", db])
    assert "largest Δ stable rank:\n  q_proj" in res.output and not NEGATIVE_ZERO.search(res.output), res.output


def test_the_esd_panels_show_the_same_matrix_and_every_shared_block_type_its_comparison_panel(pair):
    db, _, _, _ = pair
    esd = run_sql(db, None, "esd", ["a", "b"])
    series = {r[esd.columns.index("series")] for r in esd.rows}
    assert len(series) == 2 and len({s.split(": ", 1)[1] for s in series}) == 1, series
    caption = {r[esd.columns.index("caption")] for r in esd.rows}
    assert len(caption) == 1 and " (every model that has it) — chosen in a as " in caption.pop()
    blocks = {r[1] for r in run_sql(db, None, "15_comparison", ["a", "b"]).rows}
    assert {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"} <= blocks, blocks


def test_over_training_is_drawn_for_declared_checkpoints_only(pair, tmp_path):
    db, _, b_folder, a_folder = pair
    assert run_sql(db, None, "over_training", ["a", "b"]).rows == []  # two models are not a training run
    job = quiet_job(db, (f"a={a_folder}", f"b={b_folder}"), tmp_path / "o", embedding=False, base="previous")
    summary = tpa_dist.submit(job)
    assert summary.ok, summary.describe()
    rows = run_sql(db, None, "over_training", ["a", "b"]).rows
    assert rows and {r[1] for r in rows} == {"a", "b"}
    findings = run_sql(db, None, "findings", ["a", "b"]).rows
    delta = [r for r in findings if r[2].startswith("ΔW: ")]
    assert delta and delta[0][2].startswith("ΔW: 1 of ") and CHANGED in delta[0][2], delta


def test_looked_up_matrices_are_left_out_of_every_flag(tmp_path):
    import duckdb

    from tpa_dist.db.store import Store

    db = tmp_path / "f.duckdb"
    Store(db).close()
    rows = [("bert.embeddings.position_embeddings.weight", None, "position_embedding", 1.5)]
    rows += [(f"bert.encoder.layer.{i}.attention.self.query.weight", i, "q_proj", 1.5 + i) for i in range(6)]
    with duckdb.connect(str(db)) as con:
        con.execute("INSERT INTO models (model_id, revision, status) VALUES ('m', 'r', 'ok')")
        for key, layer, block, alpha in rows:
            con.execute(
                "INSERT INTO matrix_analysis (model_id, revision, settings_id, matrix_key, param_name, layer_index, "
                "block_type, kind, alpha, actual_rank, design_rank, energy_rank_90, status) "
                "VALUES ('m', 'r', 's', ?, ?, ?, ?, 'matrix', ?, 16, 16, 8, 'ok')",
                [key, key, layer, block, alpha],
            )
    flagged = {r[1] for r in run_sql(str(db), None, "alpha_flags", ["m"]).rows}
    assert flagged == {
        "bert.encoder.layer.0.attention.self.query.weight",
        "bert.encoder.layer.5.attention.self.query.weight",
    }
    flags = [r[2] for r in run_sql(str(db), None, "findings", ["m"]).rows if r[1] == "WeightWatcher flags"]
    assert flags[0].startswith("1 projection(s) with alpha < 2 (over-trained?), 1 with alpha > 6"), flags


def test_a_difference_heatmap_diverges_from_zero_and_never_writes_a_negative_zero(monkeypatch):
    import matplotlib.axes

    from tpa_dist.report import plots
    from tpa_dist.text import cell_number

    seen: dict[str, object] = {"texts": []}
    imshow, text = matplotlib.axes.Axes.imshow, matplotlib.axes.Axes.text

    def spy_imshow(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        seen.update(cmap=kwargs.get("cmap"), vmin=kwargs.get("vmin"), vmax=kwargs.get("vmax"))
        return imshow(self, *args, **kwargs)

    def spy_text(self, x, y, s, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        seen["texts"].append(s)
        return text(self, x, y, s, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "imshow", spy_imshow)
    monkeypatch.setattr(matplotlib.axes.Axes, "text", spy_text)
    rows = [("b − a", "q_proj", 0.0, -0.0004), ("b − a", "k_proj", 0.0, 0.3), ("b − a", "v_proj", 0.0, 0.0)]
    plots.heatmap("Δ", ["panel", "block_type", "depth", "value"], rows, "block_type", "depth", "value", "panel",
                  center=0.0)  # fmt: skip
    assert seen["cmap"] == "RdBu_r" and seen["vmin"] == -seen["vmax"] == -0.3
    assert "-0.00" not in seen["texts"] and seen["texts"].count("0.00") == 2, seen["texts"]
    assert [cell_number(v) for v in (-0.0, -1e-9, -0.5)] == ["0", "-1e-09", "-0.5"]
    assert cell_number(-0.0004, 3) == "0.000" and cell_number(0.0, 3, sign=True) == "0.000"


def test_curves_drawn_on_top_of_each_other_are_said_in_the_legend(monkeypatch):
    import matplotlib.axes

    from tpa_dist.report import plots

    labels = []
    plot = matplotlib.axes.Axes.plot

    def spy(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        labels.append((kwargs.get("label"), kwargs.get("linestyle")))
        return plot(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", spy)
    rows = [(m, k, float(k) ** -1.0) for m in ("a", "b") for k in range(1, 6)] + [("c", k, 2.0) for k in range(1, 6)]
    plots.lines("spectra", ["model_id", "k", "s"], rows, "k", "s", "model_id", log=True)
    assert labels[0] == ("a", "-") and labels[1] == ("b (identical to a: dashed over it)", (0, (3, 3)))
    assert labels[2][0] == "c"

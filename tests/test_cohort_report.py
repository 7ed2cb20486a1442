"""The report of a cohort (issue 39): past 16 models it reads a census — outliers by robust z with the matrices that
make them so, near-identical groups, one map — and no figure grows with the number of models; an unchanged report
is not drawn again."""

from __future__ import annotations

import shutil
import struct

import duckdb
import pytest

from tpa_dist.jobs import Job
from tpa_dist.report import hover, render
from tpa_dist.run.driver import submit

from .cohort_db import clone_cohort

SOURCE = "synth:tiny-llama"


@pytest.fixture(scope="module")
def cohort(synth_models, tmp_path_factory):
    """500 models: tiny-llama, 4 exact copies of it, 492 small perturbations, 3 planted q_proj outliers."""
    work = tmp_path_factory.mktemp("cohort")
    db = work / "cohort.duckdb"
    job = Job.create(models=(SOURCE,), db=str(db), output_dir=str(work / "o"), progress=False, embedding=False)
    assert submit(job.with_overrides(report=False)).ok
    members = clone_cohort(db, SOURCE, 499, outliers=3, copies=4)
    return db, [SOURCE, *members]


@pytest.fixture(scope="module")
def full_report(cohort, tmp_path_factory):
    """The report of all 500 models, written once (its folder: the report's .out)."""
    db, models = cohort
    out = tmp_path_factory.mktemp("report") / "all"
    rendered = render.write_report(db, out, models)
    for r in rendered:
        r.out = out
    return rendered


def _size(png: bytes) -> tuple[int, int]:
    return struct.unpack(">II", png[16:24])


def _section(rendered, name: str):
    return next((r for r in rendered if r.section.name == name), None)


def test_a_cohort_report_finds_outliers_groups_and_maps_every_model(cohort, full_report):
    _, models = cohort
    rendered = full_report
    assert not [r.error for r in rendered if r.error]
    outliers = _section(rendered, "30_cohort_outliers.sql")
    top = [dict(zip(outliers.columns, row)) for row in outliers.rows]
    assert {r["model_id"] for r in top[:3]} == set(models[-3:]) and all(r["outlier"] for r in top[:3])
    assert top[0]["farthest_features"].startswith("q_proj"), top[0]
    assert "self_attn.q_proj.weight" in top[0]["matrix_that_moves_it_most"], top[0]
    section = _section(rendered, "31_cohort_groups.sql")
    groups = [dict(zip(section.columns, row)) for row in section.rows]
    assert groups[0]["group_of"] == SOURCE and groups[0]["models"] == 5
    assert groups[0]["members"].split(", ") == models[:5]
    assert any(g["members"].split(", ") == models[-3:] for g in groups)
    assert all(g["largest_distance"] <= 0.001 for g in groups)
    # the map: one fixed-size figure, every model a point named under the pointer
    cmap = _section(rendered, "32_cohort_map.sql")
    assert _size(cmap.png) == (1000, 700)
    named = {text.split(" · ")[0] for _, _, text in hover.read(cmap.png)["p"]}
    assert named == set(models)


def test_no_figure_grows_past_its_cap_and_an_unchanged_one_is_not_drawn_again(
    cohort, full_report, tmp_path, monkeypatch
):
    """At 500 models every figure is within its 16-model cap (at most 1000 × 8000 px: 8 rows of 2 panels); writing
    the same report again draws nothing and keeps every PNG; a change to one model's alphas redraws only what shows
    them."""
    source, models = cohort
    sizes = {r.section.name: _size(r.png) for r in full_report if r.png}
    assert len(sizes) >= 9 and all(w <= 1000 and h <= 8000 for w, h in sizes.values()), sizes
    assert sizes["32_cohort_map.sql"] == (1000, 700)
    drawn: list[int] = []
    real = render.Drawing

    class Counting(real):  # one per report: how many figures it was given to draw
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            drawn.append(0)

        def add(self, job) -> None:  # noqa: ANN001
            drawn[-1] += 1
            super().add(job)

    monkeypatch.setattr(render, "Drawing", Counting)
    out = tmp_path / "copy"
    shutil.copytree(full_report[0].out, out)
    again = {r.section.name: r.png for r in render.write_report(source, out, models) if r.png}
    assert drawn == [0] and again == {r.section.name: r.png for r in full_report if r.png}
    db = tmp_path / "copy.duckdb"
    shutil.copyfile(source, db)
    con = duckdb.connect(str(db))
    con.execute("UPDATE matrix_analysis SET alpha = alpha * 2 WHERE model_id = $m", {"m": models[3]})
    con.close()
    render.write_report(db, out, models)
    assert 0 < drawn[1] < len(again)  # what shows that model's alphas is drawn again, the rest is kept


def test_a_report_of_16_models_has_no_cohort_sections(cohort):
    db, models = cohort
    from tpa_dist.db.sandbox import close, open_sandbox
    from tpa_dist.report.sections import load_sections

    sections = [s for s in load_sections() if s.name.startswith(("30_", "31_", "32_"))]
    con = open_sandbox(db)
    try:
        small = render.query(con, sections, models[:16])
        large = render.query(con, sections, models[:17])
    finally:
        close(con)
    assert [r.rows for r in small] == [[], [], []] and all(r.error is None for r in small)
    assert all(r.rows for r in large)


def test_the_console_shows_the_first_16_models_layer_by_layer_and_counts_the_rest(cohort):
    """A census's console does not run to thousands of lines: the first 16 models layer by layer, then one line."""
    from tpa_dist.report.console import MAX_CONSOLE_MODELS, layer_summary

    db, models = cohort
    text = layer_summary(db, models)
    shown = {line.split("🔹 ", 1)[1].split(" — ")[0] for line in text.splitlines() if line.startswith("🔹 ")}
    assert shown == set(models[:MAX_CONSOLE_MODELS]) and MAX_CONSOLE_MODELS == 16
    assert text.splitlines()[-1].startswith(f"… and {len(models) - 16} more model(s), not shown layer by layer")
    assert "… and" not in layer_summary(db, models[:16])

"""Numbers on the console that mean what their labels say: the summary's analysis time and rate are the matrix
phase's alone, failed matrices are counted apart from the run's other problems, and a console table marks the cells
it cuts."""

from __future__ import annotations

from tpa_dist.db.query import QueryResult, format_result
from tpa_dist.run.results import RunSummary


def test_the_summary_times_the_matrix_phase_alone_and_counts_problems_apart():
    s = RunSummary(run_id="r", total=10, done=10, seconds=70.9)
    s.phases = {"startup": 1.0, "plan": 0.5, "analysis": 6.6, "embedding": 60.0, "outputs": 2.0}
    s.fail("m: an embedding failed")
    line = s.describe().splitlines()[0]
    assert "analysis 6.6s (1.5 mat/s)" in line, line
    assert "10/10 analyzed" in line and "0 failed and 1 other problem(s)" in line, line
    assert "whole run 70.1s" in line and "embeddings 60.0s" in line, line


def test_a_cut_console_cell_ends_with_an_ellipsis_and_the_footer_says_how_to_see_it():
    long = "x" * 59 + "of the full rank on average"
    text = format_result(QueryResult(["explanation"], [(long,), ("short",)]), "table")
    assert "x" * 59 + "…" in text and long not in text
    assert "cells over 60 characters end with … here: --format csv or json shows them whole" in text
    assert long in format_result(QueryResult(["explanation"], [(long,)]), "csv")
    assert "…" not in format_result(QueryResult(["e"], [("short",)]), "table")


def test_status_times_the_matrix_phase_and_the_whole_run_under_their_own_labels(tmp_path):
    """`status` once showed `seconds` (the analysis and the embeddings) beside a rate over the matrix phase: each
    number now has its label — analysis_s and the rates over the matrix phase, run_s the whole run."""
    import tpa_dist
    from tpa_dist.db.query import run_query
    from tpa_dist.db.sqlfiles import sql_text

    from .conftest import quiet_job

    summary = tpa_dist.submit(quiet_job(tmp_path / "s.duckdb", ("synth:tiny-llama",), tmp_path / "o", k_max=4))
    assert summary.ok, summary.describe()
    result = run_query(tmp_path / "s.duckdb", sql_text("store/recent_runs.sql"), {"limit": 1})
    row = dict(zip(result.columns, result.rows[0]))
    assert "seconds" not in row
    assert row["analysis_s"] == round(summary.phases["analysis"], 1)
    assert row["mat_per_s"] == round(summary.done / summary.phases["analysis"], 2)
    assert row["mib_per_s"] == round(summary.bytes / summary.phases["analysis"] / 2**20, 1)
    whole = sum(v for k, v in summary.phases.items() if v and k != "writing")
    assert abs(row["run_s"] - whole) < 0.11 and row["run_s"] > row["analysis_s"] + summary.phases["embedding"] - 0.2


def test_the_log_calls_a_model_by_the_name_the_user_gave_it(synth_models, tmp_path, caplog):
    """`NAME=SPEC`: every console line about the model says NAME, never its folder's name."""
    import logging

    import tpa_dist

    from .conftest import quiet_job

    folder = synth_models["tiny-llama"]
    with caplog.at_level(logging.INFO, logger="tpa_dist"):
        summary = tpa_dist.submit(quiet_job(tmp_path / "n.duckdb", (f"mine={folder}",), tmp_path / "o", k_max=4))
    assert summary.ok, summary.describe()
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("embedding mine model.embed_tokens.weight: ") for line in lines), lines
    assert not [line for line in lines if folder.name in line.replace(str(folder), "")], lines  # only in its path

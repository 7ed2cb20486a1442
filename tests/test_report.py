"""Reports: every section renders rows and plots for two families; user SQL sections; exports; console."""

from __future__ import annotations

import csv
import struct

import pytest
from click.testing import CliRunner

import tpa_dist
from tpa_dist.cli import main
from tpa_dist.console import layer_summary
from tpa_dist.driver import submit
from tpa_dist.jobs import Job
from tpa_dist.plots import FIG_H, FIG_W
from tpa_dist.report import ReportError, parse_section

from .conftest import SEED_COLUMNS


@pytest.fixture(scope="module")
def two_models(ray_session, synth_models, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    job = Job.create(
        models=(str(synth_models["tiny-llama"]), str(synth_models["tiny-gpt2"])),
        db=str(out / "r.duckdb"),
        output_dir=str(out / "outputs"),
        progress=False,
        k_max=12,
    )
    summary = submit(job)
    assert summary.ok, summary.describe()
    return job, out


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_report_every_section_rows_and_plots(two_models, tmp_path):
    job, out = two_models
    user = tmp_path / "mine"
    user.mkdir()
    (user / "widest.sql").write_text(
        "-- title: My widest matrices\n-- shows: a user section\n-- draw: table\n"
        "SELECT model_id, matrix_key, cols FROM matrix_analysis "
        "WHERE list_contains($models, model_id) ORDER BY cols DESC LIMIT 3;\n"
    )
    res = CliRunner().invoke(main, ["report", "--db", job.db, "--out", str(tmp_path / "rep"), "--sql-dir", str(user)])
    assert res.exit_code == 0, res.output
    md = (tmp_path / "rep" / "report.md").read_text()
    html = (tmp_path / "rep" / "report.html").read_text()
    from tpa_dist.report import load_sections

    sections = load_sections((user,))
    assert len(sections) == 16
    for sec in sections:
        assert f"## {sec.title}" in md and sec.title in html
    body_after = {sec.title: md.split(f"## {sec.title}", 1)[1].split("\n## ", 1)[0] for sec in sections}
    for title, body in body_after.items():
        assert "(no rows)" not in body and "**Error:**" not in body, title
    assert "My widest matrices" in md
    pngs = sorted((tmp_path / "rep").glob("*.png"))
    assert len(pngs) == sum(s.draw != "table" for s in sections) == 7
    for png in pngs:
        w, h = _png_size(png.read_bytes())
        facets = 2 if png.stem in ("05_compressibility", "06_alpha_heatmap") else 1  # one heatmap per model
        assert (w, h) == (FIG_W, FIG_H * facets), png.name
    assert html.count("data:image/png;base64,") == 7 and "<img" in html and 'src="http' not in html


def test_submit_writes_report_and_seed_csv(two_models):
    job, _ = two_models
    for name in ("report.md", "report.html", "transformer_matrix_analysis.csv"):
        assert (out := __import__("pathlib").Path(job.output_dir) / name).exists(), out


def test_csv_export_header_is_the_seed_columns(two_models, tmp_path):
    job, _ = two_models
    target = tmp_path / "t.csv"

    def export(*args: str):  # noqa: ANN202
        return CliRunner().invoke(main, ["export", "--db", job.db, *args])

    res = export("--format", "csv", "--table", "transformer_matrix_analysis", "--out", str(target))
    assert res.exit_code == 0, res.output
    with open(target) as fh:
        assert next(csv.reader(fh)) == SEED_COLUMNS
    res = export(
        "--format",
        "parquet",
        "--query",
        "SELECT matrix_key, singular_values FROM spectra",
        "--out",
        str(tmp_path / "s.pq"),
    )
    assert res.exit_code == 0
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "s.pq").num_rows > 0
    res = export("--format", "json", "--table", "x; DROP TABLE runs", "--out", str(tmp_path / "x.json"))
    assert res.exit_code == 2 and "no table or view" in res.output


def test_console_summary_and_python_api(two_models):
    job, _ = two_models
    text = layer_summary(job.db, ["tiny-llama"])
    assert "LAYER-BY-LAYER MATRIX ANALYSIS" in text and "LAYER 0" in text
    assert "k_proj" in text and "Rank: 4/32 (12.5%)" in text  # the planted rank
    con = tpa_dist.connect(job.db)
    df = con.execute("SELECT * FROM transformer_matrix_analysis").df()
    con.close()
    assert list(df.columns) == SEED_COLUMNS and len(df) > 0


def test_malformed_section_named(tmp_path):
    bad = tmp_path / "bad.sql"
    bad.write_text("SELECT 1;\n")
    with pytest.raises(ReportError, match="bad.sql: no `-- title:`"):
        parse_section(bad)


@pytest.mark.skipif(not __import__("shutil").which("chromium"), reason="Debian's chromium is not installed")
def test_html_report_renders_in_headless_chromium_without_console_errors(two_models, tmp_path):
    import subprocess
    from pathlib import Path

    job, _ = two_models
    html = Path(job.output_dir) / "report.html"
    shot = tmp_path / "shot.png"
    proc = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,3000",
            f"--screenshot={shot}",
            html.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "CONSOLE" not in proc.stderr and "Uncaught" not in proc.stderr
    assert _png_size(shot.read_bytes()) == (1280, 3000)

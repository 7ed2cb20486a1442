"""Reports: every section renders rows and plots for two families; user SQL sections; exports; console."""

from __future__ import annotations

import csv
import html as html_module
import struct
from pathlib import Path

import pytest
from click.testing import CliRunner

import tpa_dist
from tpa_dist.cli import main
from tpa_dist.jobs import Job
from tpa_dist.report.console import layer_summary
from tpa_dist.report.plots import FIG_H, FIG_W
from tpa_dist.report.render import ReportError
from tpa_dist.report.sections import parse_section
from tpa_dist.run.driver import submit

from .conftest import SEED_COLUMNS, write_safetensors

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


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
    from tpa_dist.report.render import load_sections

    every = load_sections((user,))
    builtin = sorted(p.name for p in (ROOT / "sql" / "reports").glob("[0-9][0-9]_*.sql"))
    assert len(every) == len(builtin) + 1 and [s.title for s in every[:2]] == ["Findings", "Summary by model"]
    # optional sections are left out when they have nothing to show: the cross-model comparison with one model,
    # the ΔW and checkpoint sections without --base or checkpoints (two models here: the comparison is shown)
    pairwise = {"15_comparison.sql", "28_model_differences.sql", "29_difference_heatmap.sql"}
    sections = [s for s in every if not s.optional or s.name in pairwise]
    assert {s.name for s in every if s.optional} == {
        "15_comparison.sql",
        "17_delta_summary.sql",
        "18_delta_by_layer.sql",
        "19_lora_plan.sql",
        "20_over_training.sql",
        "24_rmt_esd.sql",
        "25_correlation_traps.sql",
        "26_rmt_flags.sql",
        "30_cohort_outliers.sql",  # a cohort's: more than 16 models (test_cohort_report.py)
        "31_cohort_groups.sql",
        "32_cohort_map.sql",
        *pairwise,
    }
    assert not any(f"## {s.title}" in md for s in every if s.optional and s.name not in pairwise)
    for sec in sections:
        assert f"## {sec.title}" in md and html_module.escape(sec.title) in html
    body_after = {sec.title: md.split(f"## {sec.title}", 1)[1].split("\n## ", 1)[0] for sec in sections}
    for title, body in body_after.items():
        assert "(no rows)" not in body and "**Error:**" not in body, title
    assert "My widest matrices" in md
    pngs = sorted((tmp_path / "rep").glob("*.png"))
    assert len(pngs) == sum(s.draw != "table" for s in sections) == 9
    for png in pngs:
        w, h = _png_size(png.read_bytes())
        assert w == FIG_W and h % FIG_H == 0, png.name  # small multiples: FIG_H per row of panels
        if png.stem in ("05_compressibility", "06_alpha_heatmap"):
            assert h == 2 * FIG_H  # one heatmap per model, on one colour scale
    assert html.count("data:image/png;base64,") == len(pngs) and "<img" in html and 'src="http' not in html


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
    entries = [line for line in text.splitlines() if "📊" in line]
    assert entries and all(" | α=" in line for line in entries)  # every entry has its alpha
    assert len({line.index("| Shape:") for line in entries}) == 1  # one column, whatever the names' lengths
    con = tpa_dist.connect(job.db)
    df = con.execute("SELECT * FROM transformer_matrix_analysis").df()
    con.close()
    assert list(df.columns) == SEED_COLUMNS and len(df) > 0


def test_console_names_unknown_blocks_by_module_and_stays_aligned(ray_session, tmp_path):
    """A matrix of no known block type (BERT's pooler.dense) shows under its module name, not `other`; a long name
    widens the name column for every entry."""
    import numpy as np

    rng = np.random.default_rng(0)
    folder = tmp_path / "m"
    folder.mkdir()
    tensors = {
        "pooler.dense.weight": ("F32", rng.standard_normal((16, 16)).astype("<f4"), (16, 16)),
        "encoder.layer.0.attention.self.query.weight": ("F32", rng.standard_normal((16, 16)).astype("<f4"), (16, 16)),
        "encoder.layer.0.a_very_long_module_name_of_this_layer.weight": (
            "F32",
            rng.standard_normal((16, 24)).astype("<f4"),
            (16, 24),
        ),
    }
    write_safetensors(folder / "model.safetensors", tensors)
    job = Job.create(models=(f"m={folder}",), db=str(tmp_path / "c.duckdb"), progress=False, embedding=False)
    assert submit(job).ok
    text = layer_summary(job.db, ["m"])
    assert "📊 pooler.dense" in text and " other " not in text
    entries = [line for line in text.splitlines() if "📊" in line]
    assert len(entries) == 3 and len({line.index("| Shape:") for line in entries}) == 1


def test_panels_of_one_line_each_are_drawn_as_one_panel():
    """One model's spectra by role were four one-line panels; now one panel with a line per role. Two models keep
    a panel per role."""
    from tpa_dist.report import hover, plots

    cols = ["role", "model_id", "series", "sv_index", "sigma"]
    one = [(role, "m", f"m {role}", k, (i + 1) / k) for i, role in enumerate("abc") for k in range(1, 20)]
    png = plots.lines("T", cols, one, "sv_index", "sigma", "series", log=True, facet="role", color="model_id")
    assert _png_size(png) == (FIG_W, FIG_H)
    assert {p[2].split(" · ")[1] for p in hover.read(png)["p"]} == {"a: m a", "b: m b", "c: m c"}
    two = one + [(role, "n", f"n {role}", k, 10 * (i + 1) / k) for i, role in enumerate("abc") for k in range(1, 20)]
    png = plots.lines("T", cols, two, "sv_index", "sigma", "series", log=True, facet="role", color="model_id")
    assert _png_size(png) == (FIG_W, 2 * FIG_H)


def test_a_figure_laid_out_once_is_drawn_once(monkeypatch):
    """A tight-layout figure is drawn once, into its PNG: savefig's extra layout draw was 12 % of a report's figures."""
    from matplotlib.figure import Figure

    from tpa_dist.report import plots

    draws = []
    draw = Figure.draw
    monkeypatch.setattr(Figure, "draw", lambda fig, renderer: draws.append(1) or draw(fig, renderer))
    cols = ["model_id", "value"]
    rows = [(m, v / 7) for m in ("a", "b", "c") for v in range(1, 40)]
    png = plots.histogram("T", cols, rows, "value", "model_id")
    assert png.startswith(b"\x89PNG") and len(draws) == 1
    png = plots.lines("T", ["x", "y", "s"], [(k, 1 / k, s) for s in "pq" for k in range(1, 9)], "x", "y", "s", log=True)
    assert png.startswith(b"\x89PNG") and len(draws) == 2


def test_the_anova_figures_warning_is_a_line_of_its_own_and_names_stay_escaped(monkeypatch):
    """anova_curve.png's title and its degeneracy warning on lines of their own (the title's line break was escaped
    to a literal \\x0a with every other control character: one line cut off at both edges), a tensor name's own
    newline and ESC still escaped."""
    from types import SimpleNamespace

    from tpa_dist.report import plots

    titles = []
    png = plots._png
    monkeypatch.setattr(plots, "_png", lambda fig: titles.append(fig._suptitle.get_text()) or png(fig))
    sweep = [{"k": k, "f_stat": 100.0 / k, "silhouette": 0.1, "inertia": 50.0 - k} for k in range(2, 8)]
    res = SimpleNamespace(
        sweep=sweep, param_name="wte\n\x1b[31mevil", rows=90, vocab_rows=100, cols=8, chosen_k=2, recommended_k=None,
        verdict="no preferred number", gaps=[0.1] * 6, degenerate="F is largest at the edge of the swept range",
    )  # fmt: skip
    assert plots.anova_curve("org/m\x07", [res]).startswith(b"\x89PNG")
    lines = titles[0].split("\n")
    assert lines[0].startswith("org/m\\x07: k-means of the token embeddings"), lines
    assert lines[1].startswith("wte\\x0a\\x1b[31mevil: k = 2 is degenerate — F is largest"), lines
    assert len(lines) == 2 and not any(ord(c) < 32 for line in lines for c in line), lines


def test_malformed_section_named(tmp_path):
    bad = tmp_path / "bad.sql"
    bad.write_text("SELECT 1;\n")
    with pytest.raises(ReportError, match="bad.sql: no `-- title:`"):
        parse_section(bad)


def test_html_report_is_interactive_in_headless_chromium(two_models, tmp_path):
    """In a real browser: no console error; hovering a figure's point shows its value; the picker draws the chosen
    matrix from its stored singular values; headers sort; the filter and the model toggles hide rows."""
    import duckdb
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from .browser import console_errors, json_island, open_browser, point_at

    job, _ = two_models
    page = Path(job.output_dir) / "report.html"
    text = page.read_text(encoding="utf-8")  # self-contained: nothing loaded from elsewhere
    assert not __import__("re").search(r"<script[^>]+src=|<link|(src|href)=['\"]?(https?:|//)", text)
    browser = open_browser(tmp_path / "profile")
    try:
        browser.get(page.as_uri())
        assert console_errors(browser) == []
        figures = browser.find_elements(By.CSS_SELECTOR, "img.fig")
        assert len(figures) >= 7 and all(f.get_attribute("data-hover") for f in figures)  # hover on every figure
        # hover: the alpha heatmap's cell under the pointer names its block, layer and value; off the data, nothing
        heat = browser.find_element(By.CSS_SELECTOR, "img[data-hover='h-06_alpha_heatmap']")
        points = json_island(browser, "h-06_alpha_heatmap")
        x, y, text = points["p"][len(points["p"]) // 2]
        point_at(browser, heat, x, y, points["w"], points["h"])
        tip = browser.find_element(By.ID, "tip")
        assert tip.is_displayed() and tip.text == text and "heavy-tail exponent α" in text, text
        point_at(browser, heat, 2, 2, points["w"], points["h"])
        assert not tip.is_displayed()
        # the picker: another matrix redraws the spectrum with that matrix's stored singular values
        select = Select(browser.find_element(By.ID, "picker-matrix"))
        data = json_island(browser, "tpa-picker")
        first = browser.find_element(By.CSS_SELECTOR, "#picker-spectrum path").get_attribute("d")
        target = next(
            i
            for i, e in enumerate(data["keys"])
            if str(i) != select.first_selected_option.get_attribute("value")
            and len(e["m"]) == 1
            and len(next(iter(e["m"].values()))["k"]) > 8
        )
        select.select_by_value(str(target))
        entry = data["keys"][target]
        (model,) = entry["m"]
        paths = browser.find_elements(By.CSS_SELECTOR, "#picker-spectrum path")
        assert len(paths) == 1 and paths[0].get_attribute("d") != first
        assert entry["key"] in browser.find_element(By.ID, "picker-spectrum").text
        with duckdb.connect(job.db, read_only=True) as con:
            (stored,) = con.execute(
                "SELECT singular_values FROM spectra WHERE model_id = ? AND matrix_key = ?", [model, entry["key"]]
            ).fetchone()
        assert entry["m"][model]["s"][0] == pytest.approx(stored[0], rel=1e-4)
        assert browser.find_element(By.ID, "picker-info").text.splitlines()[1].startswith(model)
        svg = browser.find_element(By.CSS_SELECTOR, "#picker-spectrum svg")
        start = paths[0].get_attribute("d")[1:].split("L")[0].split(",")
        point_at(browser, svg, float(start[0]), float(start[1]), 520, 340)
        assert tip.is_displayed() and f"σ_k {float(f'{stored[0]:.4g}'):g}" in tip.text, tip.text
        # sorting: a click on a numeric header orders the rows by number, a second click reverses them
        table = browser.find_element(By.ID, "t-04_layer_by_layer")
        headers = table.find_elements(By.TAG_NAME, "th")
        column = [h.text for h in headers].index("alpha")
        values = lambda: [  # noqa: E731
            float(r.find_elements(By.TAG_NAME, "td")[column].text)
            for r in table.find_elements(By.CSS_SELECTOR, "tbody tr")
            if r.is_displayed() and r.find_elements(By.TAG_NAME, "td")[column].text
        ]
        headers[column].click()
        up = values()
        assert len(up) > 5 and up == sorted(up)
        headers[column].click()
        assert values() == sorted(up, reverse=True)
        # the filter and the model toggles hide rows
        rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
        models = {r.get_attribute("data-model") for r in rows}
        assert len(models) == 2
        hidden, kept = sorted(models)
        box = browser.find_element(By.CSS_SELECTOR, f"#model-toggles input[value='{hidden}']")
        browser.execute_script("arguments[0].scrollIntoView()", box)
        box.click()
        assert {r.get_attribute("data-model") for r in rows if r.is_displayed()} == {kept}
        assert all(hidden not in line for line in browser.find_element(By.ID, "picker-info").text.splitlines())
        box.click()
        search = table.find_element(By.XPATH, "preceding::input[@type='search'][1]")
        search.send_keys(rows[0].find_elements(By.TAG_NAME, "td")[3].text)
        shown = [r for r in rows if r.is_displayed()]
        assert 0 < len(shown) < len(rows)
        assert console_errors(browser) == []
        browser.execute_script("window.scrollTo(0, 0)")
        shot = tmp_path / "shot.png"
        browser.save_screenshot(str(shot))
        import matplotlib.image

        pixels = matplotlib.image.imread(str(shot))[..., :3]
        assert pixels.std() > 0.05  # text, tables and figures drawn
    finally:
        browser.quit()


def test_summary_first_then_contents_and_every_model_in_every_cross_model_section(two_models, tmp_path):
    import duckdb

    from tpa_dist.report.render import load_sections, render

    job, _ = two_models
    write_report_dir = tmp_path / "rep"
    CliRunner().invoke(main, ["report", "--db", job.db, "--out", str(write_report_dir)])
    md = (write_report_dir / "report.md").read_text(encoding="utf-8")
    html = (write_report_dir / "report.html").read_text(encoding="utf-8")
    assert md.index("## Findings") < md.index("## Summary by model") < md.index("## Contents") < md.index("## Models")
    findings = md.split("## Findings", 1)[1].split("## Summary by model", 1)[0]
    for model in ("tiny-llama", "tiny-gpt2"):
        assert f"| {model} | most compressible |" in findings and f"| {model} | WeightWatcher flags |" in findings
    assert "- [Models](#02_models)" in md and '<a id="02_models"></a>' in md
    assert "<a href='#02_models'>Models</a>" in html and "<h2 id='02_models'>" in html
    summary = md.split("## Summary by model", 1)[1].split("## Contents", 1)[0]
    for column in (
        "mean_alpha",
        "alpha_weighted",
        "log_norm",
        "log_spectral_norm",
        "stable_rank",
        "rank_deficient_pct",
        "mean_r90_ratio",
        "embedding_clusters",
        "embedding_shape",
        "max_f_k",
    ):
        assert column in summary
    assert "tiny-llama" in summary and "tiny-gpt2" in summary
    con = duckdb.connect(job.db, read_only=True)
    rendered = {r.section.name: r for r in render(con, load_sections(), ["tiny-llama", "tiny-gpt2"])}
    con.close()
    for name in (
        "09_alpha_distribution.sql",
        "11_spectra.sql",
        "12_esd.sql",
        "13_embedding_anova.sql",
        "15_comparison.sql",
        "05_compressibility.sql",
    ):
        r = rendered[name]
        i = r.columns.index("model_id")
        assert {row[i] for row in r.rows} == {"tiny-llama", "tiny-gpt2"}, name
    assert len(rendered["12_esd.sql"].captions) == 2 and all("chosen" in c for c in rendered["12_esd.sql"].captions)
    layer = [row for row in rendered["04_layer_by_layer.sql"].rows if row[0] == "tiny-llama" and row[1] == 0]
    blocks = [row[2] for row in layer]
    assert blocks == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], blocks
    params = rendered["03_params_by_block.sql"]
    assert params.columns == ["block_type", "tiny-llama (percent)", "tiny-gpt2 (percent)"]


def test_block_rank_macro_is_the_canonical_order(two_models):
    import duckdb

    from tpa_dist.checkpoint.classify import BLOCK_ORDER

    job, _ = two_models
    con = duckdb.connect(job.db, read_only=True)
    ranks = [con.execute("SELECT block_rank(?)", [b]).fetchone()[0] for b in BLOCK_ORDER]
    con.close()
    assert ranks == list(range(1, len(BLOCK_ORDER) + 1))


def test_report_text_is_clean_utf8_with_control_tokens_and_broken_bytes(ray_session, tmp_path):
    """A byte-level BPE vocabulary whose tokens decode to NUL, 0x11, 0x19, ESC and invalid UTF-8."""
    import json

    import numpy as np

    from tpa_dist.checkpoint.vocab import bytes_to_unicode

    table = bytes_to_unicode()
    raw_tokens = [b"\x00", b"\x11", b"\x19", b"\x1b[31m", b"\xe4", b"\xff\xfe", b"ok", b"\xe2\x80\xae"]
    raw_tokens += [f"w{i}".encode() for i in range(40)]
    vocab = {"".join(table[b] for b in t): i for i, t in enumerate(raw_tokens)}
    folder = tmp_path / "ctl"
    folder.mkdir()
    (folder / "tokenizer.json").write_text(
        json.dumps({"model": {"type": "BPE", "vocab": vocab, "merges": []}, "decoder": {"type": "ByteLevel"}})
    )
    (folder / "config.json").write_text(json.dumps({"vocab_size": len(raw_tokens)}))
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((len(raw_tokens), 8)).astype(np.float32)
    emb[:8] += 25.0  # the odd tokens form a cluster of their own: they are representatives
    write_safetensors(
        folder / "model.safetensors",
        {
            "model.embed_tokens.weight": ("F32", emb, emb.shape),
            "model.layers.0.mlp.down_proj.weight": ("F32", rng.standard_normal((8, 16)).astype(np.float32), (8, 16)),
        },
    )
    job = Job.create(
        models=(str(folder),),
        db=str(tmp_path / "c.duckdb"),
        output_dir=str(tmp_path / "out"),
        progress=False,
        k_min=2,
        k_max=4,
    )
    summary = submit(job)
    assert summary.ok, summary.describe()
    for name in ("report.md", "report.html"):
        data = (tmp_path / "out" / name).read_bytes()
        text = data.decode("utf-8")  # valid UTF-8
        bad = sorted({hex(ord(c)) for c in text if (ord(c) < 32 and c not in "\n\t") or c == "\ufffd"})
        assert not bad, (name, bad)
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "\\x00" in md and "\\x1b[31m" in md and "\\xe4" in md and "U+202E" in md


DRAW_CHECK = r"""
import json, os
from tpa_dist.report import drawing, plots

def figure(i):
    if i == 2:
        raise ValueError("figure 2 has no value column")
    rows = [(f"m{j % 2}", float((j * 7919 + i) % 97)) for j in range(200)]
    return plots.histogram(f"figure {i}", ["model", "v"], rows, "v", "model") + f"|{os.getpid()}".encode()

jobs = [(figure, (i,)) for i in range(5)]
forked = drawing.draw_all(jobs, (ValueError,))
drawing.can_fork = lambda: False
serial = drawing.draw_all(jobs, (ValueError,))
def show(out):
    return [str(o) if isinstance(o, Exception) else o.rsplit(b"|", 1)[1].decode() for o in out]
same = [a == b for a, b in zip(forked, serial) if not isinstance(a, Exception)]
print(json.dumps({"parent": os.getpid(), "forked": show(forked), "serial": show(serial),
                  "same_png": all(a.rsplit(b"|", 1)[0] == b.rsplit(b"|", 1)[0] for a, b in zip(forked, serial)
                                  if not isinstance(a, Exception))}))
"""


def test_figures_drawn_in_forked_children_equal_the_serial_ones_and_keep_errors_per_figure(tmp_path):
    """A fresh process (no Ray in it, as a small submit's report): figures go to forked children when there are
    several cores, come back in order as the same PNG bytes as drawn one by one, and a figure's error stays its
    own."""
    import json
    import os
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", DRAW_CHECK], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    parent = str(out["parent"])
    for run in ("forked", "serial"):
        assert "figure 2 has no value column" in out[run][2]
    assert out["serial"][:2] + out["serial"][3:] == [parent] * 4
    if (os.cpu_count() or 1) > 1:
        assert parent not in out["forked"][:2] + out["forked"][3:]
    assert out["same_png"]


def _broken_figure() -> bytes:
    raise ValueError("no rows to plot")


def test_extra_figures_are_written_with_the_report_and_a_failed_one_is_its_own_error(two_models, tmp_path):
    """The run's other PNGs (the seed's anova_curve.png) are drawn with the report's figures: each lands at its
    path, and one that fails is named as an error while the report and the other figure are written."""
    from tpa_dist.report.drawing import Figure
    from tpa_dist.report.plots import histogram
    from tpa_dist.report.render import write_report

    job, _ = two_models
    good = Figure(tmp_path / "m" / "good.png", histogram, ("h", ["model", "v"], [("a", 1.0), ("a", 2.0)], "v", "model"))
    bad = Figure(tmp_path / "m" / "bad.png", _broken_figure, ())
    rendered = write_report(job.db, tmp_path / "rep", figures=[good, bad])
    assert _png_size(good.path.read_bytes()) == (FIG_W, FIG_H)
    assert not bad.path.exists()
    errors = [r.error for r in rendered if r.error]
    assert errors == ["bad.png not written: ValueError: no rows to plot"]
    assert "bad.png not written" in (tmp_path / "rep" / "report.md").read_text(encoding="utf-8")


def test_a_figure_of_many_models_draws_the_first_sixteen_and_says_so():
    """300 models made the red team's report take 831 s (a panel per model per figure): figures now draw the first
    MAX_FIGURE_MODELS models in the report's order, the tables keep all, the caption says which."""
    from pathlib import Path

    from tpa_dist.report.render import MAX_FIGURE_MODELS, Rendered, Section, _figure_rows

    section = Section(Path("05_x.sql"), "x", "", "heatmap", {}, "")
    rows = [(f"m{i:03d}", layer, 0.5) for i in range(40) for layer in range(3)]
    r = Rendered(section, ["model_id", "layer_index", "value"], rows)
    drawn = _figure_rows(r)
    assert {row[0] for row in drawn} == {f"m{i:03d}" for i in range(MAX_FIGURE_MODELS)} and len(drawn) == 48
    assert len(r.rows) == 120 and r.captions == [
        "The figure shows the first 16 of 40 models (the tables list all; tpa-dist report --models A,B,… chooses which)."
    ]
    few = Rendered(section, ["model_id", "value"], [("a", 1.0), ("b", 2.0)])
    assert _figure_rows(few) == few.rows and not few.captions


def test_report_refuses_unknown_models_empty_and_foreign_databases(two_models, tmp_path):
    """A typo in --models, an empty DuckDB file and another program's database: one line, exit 2, nothing written."""
    import duckdb

    job, _ = two_models
    res = CliRunner().invoke(main, ["report", "--db", job.db, "--out", str(tmp_path / "r1"), "--models", "tiny-lama"])
    assert res.exit_code == 2 and "no analyzed model named 'tiny-lama'" in res.output and "tiny-llama" in res.output
    assert not (tmp_path / "r1" / "report.md").exists()
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    foreign = tmp_path / "foreign.duckdb"
    with duckdb.connect(str(foreign)) as con:
        con.execute("CREATE TABLE sales (id INTEGER)")
    for path in (empty, foreign):
        res = CliRunner().invoke(main, ["report", "--db", str(path), "--out", str(tmp_path / "r2")])
        assert res.exit_code == 2, res.output
        assert res.output.count("\n") == 1 and "not a tpa-dist database" in res.output, res.output


def test_compare_two_models_by_block_type_and_depth(two_models):
    """`compare A B`: each Δ equals the mean of B's matrices minus A's in the same block type and tenth of depth,
    computed here from the rows; the largest differences listed; unknown names one line, exit 2."""
    import json

    import duckdb

    job, _ = two_models
    res = CliRunner().invoke(main, ["compare", "tiny-llama", "tiny-gpt2", "--db", job.db, "--format", "json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.output)
    with duckdb.connect(job.db, read_only=True) as con:
        rows = con.execute(
            "SELECT model_id, block_type, layer_index, svd_90_percent_ratio, alpha FROM matrix_analysis "
            "WHERE kind = 'matrix' AND status = 'ok' AND layer_index IS NOT NULL"
        ).fetchall()
    last = {m: max(r[2] for r in rows if r[0] == m) for m in ("tiny-llama", "tiny-gpt2")}
    cells: dict = {}
    for model, block, layer, r90, alpha in rows:
        tenth = min(int(layer / max(last[model], 1) * 10), 9)
        cells.setdefault((model, block, tenth), []).append((r90, alpha))
    assert got["rows"]
    for r in got["rows"]:
        key = (r["block_type"], round(r["depth_from"] * 10))
        a, b = cells[("tiny-llama", *key)], cells[("tiny-gpt2", *key)]
        mean = lambda xs, i: sum(x[i] for x in xs) / len(xs)  # noqa: E731
        assert r["d_r90"] == pytest.approx(mean(b, 0) - mean(a, 0), abs=1e-12)
        assert r["d_alpha"] == pytest.approx(mean(b, 1) - mean(a, 1), abs=1e-12)
    top = got["largest"]["r90"]
    assert abs(top[0]["d_r90"]) == max(abs(r["d_r90"]) for r in got["rows"])
    table = CliRunner().invoke(main, ["compare", "tiny-llama", "tiny-gpt2", "--db", job.db])
    assert table.exit_code == 0 and "largest Δ 90 % energy rank ratio" in table.output
    bad = CliRunner().invoke(main, ["compare", "tiny-llama", "tiny-gtp2", "--db", job.db])
    assert bad.exit_code == 2 and bad.output.count("\n") == 1 and "'tiny-gtp2'" in bad.output


def test_sql_file_runs_a_bundled_section_by_name(two_models):
    job, _ = two_models
    for name in ("compressibility", "05_compressibility", "05_compressibility.sql"):
        res = CliRunner().invoke(main, ["sql", "--db", job.db, "--file", name, "--format", "csv"])
        assert res.exit_code == 0 and res.output.startswith("model_id,layer_index,block_type,value"), res.output
    bad = CliRunner().invoke(main, ["sql", "--db", job.db, "--file", "compresibility"])
    assert bad.exit_code == 2 and "05_compressibility" in bad.output


def test_findings_name_the_layer_that_stands_out(tmp_path):
    """Seven q_proj layers with alpha ≈ 3 and one at 9: the findings name that one (robust z over its block type),
    the flags count it as under-trained, and the most/least compressible block types come from the r90 means."""
    import duckdb

    from tpa_dist.db.query import run_sql
    from tpa_dist.db.store import Store

    db = tmp_path / "f.duckdb"
    Store(db).close()
    rows = []
    for layer in range(8):
        alpha = 9.0 if layer == 5 else 3.0 + 0.05 * layer
        rows.append((f"model.layers.{layer}.self_attn.q_proj.weight", layer, "q_proj", alpha, 16, 16, 0.5))
        rows.append((f"model.layers.{layer}.mlp.down_proj.weight", layer, "down_proj", 3.0, 16, 16, 0.25))
    with duckdb.connect(str(db)) as con:
        con.execute("INSERT INTO models (model_id, revision, status) VALUES ('m', 'r', 'ok')")
        for key, layer, block, alpha, actual, design, r90 in rows:
            con.execute(
                "INSERT INTO matrix_analysis (model_id, revision, settings_id, matrix_key, param_name, layer_index, "
                "block_type, kind, alpha, actual_rank, design_rank, energy_rank_90, status) "
                "VALUES ('m', 'r', 's', ?, ?, ?, ?, 'matrix', ?, ?, ?, ?, 'ok')",
                [key, key, layer, block, alpha, actual, design, round(r90 * design)],
            )
    result = run_sql(str(db), None, "findings", ["m"])
    found = {(r[1], r[2]) for r in result.rows}
    assert any(f == "stands out (alpha)" and d.startswith("model.layers.5.self_attn.q_proj.weight: alpha 9.0")
               for f, d in found)  # fmt: skip
    assert not any(f == "stands out (alpha)" and "down_proj" in d for f, d in found)
    assert ("most compressible", "down_proj: 90 % of the energy in 25.0 % of the full rank on average; least: "
            "q_proj (50.0 %)") in found  # fmt: skip
    assert any(f == "WeightWatcher flags" and d.startswith("0 projection(s) with alpha < 2 (over-trained?), 1 with")
               for f, d in found)  # fmt: skip


def test_a_report_of_other_models_is_kept_not_replaced(two_models, tmp_path):
    job, _ = two_models
    out = tmp_path / "rep"
    for models in ("tiny-llama", "tiny-gpt2", "tiny-gpt2"):
        res = CliRunner().invoke(main, ["report", "--db", job.db, "--out", str(out), "--models", models])
        assert res.exit_code == 0, res.output
    kept = list((out / "previous").iterdir())
    assert len(kept) == 1 and "Models: tiny-llama" in (kept[0] / "report.md").read_text()
    assert (kept[0] / "report.html").exists() and list(kept[0].glob("[0-9][0-9]_*.png"))
    assert "Models: tiny-gpt2" in (out / "report.md").read_text()


def test_links_planted_in_the_report_folder_are_replaced_never_followed(two_models, tmp_path):
    """report.md, report.html and a figure's name planted as links to files outside the folder: the report replaces
    the links with its own files and the files outside keep their bytes."""
    job, _ = two_models
    out, outside = tmp_path / "rep", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    names = ("report.md", "report.html", "05_compressibility.png")
    for name in names:
        (outside / name).write_text("not yours\n")
        (out / name).symlink_to(outside / name)
    res = CliRunner().invoke(main, ["report", "--db", job.db, "--out", str(out), "--models", "tiny-llama"])
    assert res.exit_code == 0, res.output
    for name in names:
        assert (outside / name).read_text() == "not yours\n", name
        assert not (out / name).is_symlink() and (out / name).stat().st_size > 1000, name
    assert "Models: tiny-llama" in (out / "report.md").read_text()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]  # no temporary file left beside them


def test_a_sections_needs_spare_its_query_and_bad_needs_are_one_line(tmp_path):
    """`-- needs:`: a section is not queried (a query that would fail shows no error) when its table is empty or
    the report has too few models — optional or not (a section that is not optional shows no rows, as its query
    would); queried when they hold; a needs line that is not a table name or models>N is one error naming the
    file."""
    import duckdb as ddb

    from tpa_dist.errors import ReportError
    from tpa_dist.report import render
    from tpa_dist.report.sections import parse_section

    def section(name: str, text: str):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return parse_section(path)

    con = ddb.connect()
    con.execute("CREATE TABLE empty_t (x INT); CREATE TABLE full_t (x INT); INSERT INTO full_t VALUES (1)")
    failing = "SELECT * FROM no_such_table"
    spared = section("a.sql", f"-- title: a\n-- optional: true\n-- needs: empty_t\n{failing}")
    few = section("b.sql", f"-- title: b\n-- optional: true\n-- needs: full_t, models>1\n{failing}")
    runs = section("c.sql", "-- title: c\n-- optional: true\n-- needs: full_t, models>1\nSELECT x FROM full_t")
    shown = section("e.sql", f"-- title: e\n-- needs: empty_t\n{failing}")
    a, b, e = render.query(con, [spared, few, shown], ["m"])
    assert (a.rows, a.error, b.rows, b.error, e.rows, e.error) == ([], None, [], None, [], None)
    (c,) = render.query(con, [runs], ["m", "n"])
    assert c.rows == [(1,)] and c.error is None
    for text, words in (
        ("-- title: d\n-- optional: true\n-- needs: x; DROP TABLE full_t\nSELECT 1", "takes table names"),
        ("-- title: f\n-- needs: models>two\nSELECT 1", "takes table names"),
    ):
        with pytest.raises(ReportError, match=words):
            section("bad.sql", text)

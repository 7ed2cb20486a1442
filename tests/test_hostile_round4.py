"""Hostile input, round 4 (docs/reliability.md): job files, names in report.md and on the terminal, report sections
that would collide, and every error one line — each as an attacker or a new user would meet it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import tpa_dist
from tpa_dist.cli import main
from tpa_dist.errors import JobError, JobFileError
from tpa_dist.jobs import Job, load_job, parse_model_entry

from .conftest import write_safetensors

OSC = "\x1b]0;pwned\x07"
HTML = "<img src=x onerror=window.__pwned=1>"


def _one_line_error(res, exit_code: int = 2) -> str:
    text = res.output.strip()
    assert res.exit_code == exit_code, res.output
    assert len(text.splitlines()) == 1 and text.startswith("error: ") and "Traceback" not in text, res.output
    return text


def test_job_files_put_outputs_beside_their_database_and_range_check_integers(tmp_path):
    job_file = tmp_path / "j.toml"
    job_file.write_text('models = ["synth:tiny-llama"]\n[job]\ndb = "elsewhere/x.duckdb"\n')
    assert Path(load_job(job_file).output_dir) == Path("elsewhere/outputs")
    job_file.write_text('models = ["synth:tiny-llama"]\n[rmt]\nseed = 99999999999999999999999\n')
    with pytest.raises(JobFileError, match=r"\[rmt\] seed .*must be a 64-bit integer"):
        load_job(job_file)
    with pytest.raises(JobError, match="seed"):
        Job.create(models=("synth:tiny-llama",), seed=2**64)
    job_file.write_text('models = [{ id = "synth:tiny-llama", name = "a=synth:tiny-gpt2" }]\n')
    (entry,) = load_job(job_file).models
    assert parse_model_entry(entry) == ("a=synth:tiny-gpt2", "synth:tiny-llama")  # the name, literally


@pytest.fixture(scope="module")
def hostile_db(tmp_path_factory):
    """A model whose tensor names carry raw HTML, a terminal title escape and a newline, analyzed with its report."""
    work = tmp_path_factory.mktemp("hostile4")
    folder = work / "m"
    folder.mkdir()
    rng = np.random.default_rng(0)
    names = [f"model.layers.0.mlp.{HTML}.weight", f"model.layers.1.mlp.{OSC}x.weight", "model.layers.2.mlp.a\nb.weight"]
    tensors = {n: ("F32", rng.standard_normal((24, 16)).astype(np.float32), (24, 16)) for n in names}
    write_safetensors(folder / "model.safetensors", tensors)
    (folder / "config.json").write_text(json.dumps({"num_hidden_layers": 3}))
    db = work / "h.duckdb"
    job = tpa_dist.Job.create(
        models=(f"evil={folder}",), db=str(db), output_dir=str(work / "out"), progress=False, embedding=False
    )
    assert tpa_dist.submit(job).ok
    return db, folder, work / "out"


def test_report_md_carries_no_raw_html_from_names(hostile_db):
    _, _, out = hostile_db
    md = (out / "report.md").read_text()
    assert "onerror" in md and "<img" not in md and "&lt;img src=x onerror=window.__pwned=1&gt;" in md


def test_the_terminal_never_receives_a_control_character_from_a_name(hostile_db):
    db, folder, _ = hostile_db
    inspect = subprocess.run([sys.executable, "-m", "tpa_dist", "inspect", str(folder)], capture_output=True, text=True)
    assert inspect.returncode == 0, inspect.stderr
    summary = subprocess.run(
        [sys.executable, "-m", "tpa_dist", "submit", "--models", f"evil={folder}", "--db", str(db), "--force"],
        capture_output=True,
        text=True,
    )
    for text in (inspect.stdout + inspect.stderr, summary.stdout + summary.stderr):
        assert "\x1b" not in text and "\x07" not in text, text
        assert not any(line.startswith("b.weight") for line in text.splitlines()), text  # the newline forged none


def test_a_report_section_that_collides_with_a_bundled_one_is_refused(hostile_db, tmp_path):
    db, _, _ = hostile_db
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "00_findings.sql").write_text("-- title: Mine\n-- draw: table\nSELECT 1 AS x\n")
    res = CliRunner().invoke(main, ["report", "--db", str(db), "--out", str(tmp_path / "r"), "--sql-dir", str(mine)])
    text = _one_line_error(res)
    assert "00_findings.sql: its name gives the report id '00_findings'" in text and "rename the file" in text


@pytest.mark.parametrize(
    "args, expected",
    [
        (["plan", "unfreeze", "--db", "x.duckdb"], "Missing option '--out'"),
        (["export", "--db", "x.duckdb", "--table", "runs"], "Missing option '--out'"),
        (["plan", "prune", "--sparsity", "50", "--out", "p.json"], "did you mean 0.5?"),
        (["sql", "--max-rows", "99999999999999999999", "SELECT 1"], "is not in the range"),
        (["export", "--table", "runs", "--out", "r.txt"], "give --format csv|json|parquet"),
        (["compare", "a", "a"], "both names are the same model ('a')"),
        (["nosuch"], "No such command 'nosuch'"),
    ],
)
def test_every_usage_error_is_one_line(tmp_path, monkeypatch, args, expected):
    monkeypatch.chdir(tmp_path)
    text = _one_line_error(CliRunner().invoke(main, args))
    assert expected in text, text


def test_bad_environment_and_hub_ids_are_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TPA_DIST_INJECT_DELAY_S", "abc")
    res = CliRunner().invoke(main, ["submit", "--models", "synth:tiny-llama", "--db", str(tmp_path / "d.duckdb")])
    assert _one_line_error(res) == "error: TPA_DIST_INJECT_DELAY_S='abc' is not a number"
    monkeypatch.delenv("TPA_DIST_INJECT_DELAY_S")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    text = _one_line_error(CliRunner().invoke(main, ["inspect", "org/.."]))
    assert re.match(r"error: 'org/\.\.' is not a valid Hub id", text) and "attempts" not in text, text


def test_model_specs_that_cannot_work_are_named_once_while_planning(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "pytorch_model.bin").write_bytes(b"\x80\x04")
    specs = ("synth:tiny-lama", str(tmp_path / "missing"), str(tmp_path / "empty"), str(tmp_path / "bin"))
    proc = subprocess.run(
        [sys.executable, "-m", "tpa_dist", "submit", "--models", ",".join((*specs, "synth:tiny-llama"))]
        + ["--db", str(tmp_path / "s.duckdb"), "--no-report", "--no-embedding", "--quiet", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "unknown synthetic preset 'tiny-lama' (did you mean 'tiny-llama'?)" in out, out
    lines = out.splitlines()
    first_worker = next(i for i, line in enumerate(lines) if "workers:" in line)
    for spec in specs:
        named = [i for i, line in enumerate(lines) if f"model {spec}" in line]
        assert len(named) == 1 and named[0] < first_worker, (spec, out)  # once, before any worker started
    assert "4 model(s) skipped while planning, each named above" in out, out


def test_status_never_lets_a_model_name_in_the_live_progress_drive_the_terminal(tmp_path):
    """The live progress a running submit publishes names the model whose embeddings it clusters; `status` prints it
    (beside the recent runs, and alone while the writer holds the lock) as text, never as terminal control."""
    import os
    import time

    from tpa_dist.db.live import LiveProgress, _publish
    from tpa_dist.db.store import Store

    db = tmp_path / "s.duckdb"
    store = Store(db)
    store.start_run("r1", "tpa-dist submit", {"models": [f"evil{OSC}name"]}, {}, "host")
    store.close()
    _publish(db, LiveProgress("r1", os.getpid(), time.time(), 10, 1, 0, 0, 0, phase=f"embeddings 1/1: evil{OSC}name"))
    out = CliRunner().invoke(main, ["status", "--db", str(db)]).output
    assert "now embeddings 1/1: evil" in out and "\x1b" not in out and "\x07" not in out, repr(out)


def test_printable_escapes_exactly_the_dangerous_code_points_fast_path_or_not():
    """text.printable returns a string with nothing to escape as it is (its fast path) and otherwise escapes each
    control, format, surrogate, unassigned, line/paragraph separator and U+FFFD — compared, on random strings drawn
    from every kind of code point, with the definition written out here."""
    import random
    import unicodedata

    from tpa_dist.text import printable

    def reference(s: str, keep_newlines: bool) -> str:
        out = []
        for ch in s:
            if keep_newlines and ch in "\n\t":
                out.append(ch)
            elif unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Cn", "Zl", "Zp") or ch == "\ufffd":
                out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"U+{ord(ch):04X}")
            else:
                out.append(ch)
        return "".join(out)

    pools = [
        "abc XYZ 09_-./",  # plain ASCII: the fast path
        "\x00\x1b\x7f\n\t\r",  # controls
        "\u202e\u200b\ufeff\u2028\u2029\ufffd",  # format, separators, the replacement character
        "\u00a0\ue000\U000f0000",  # no-break space and private use: kept (not printable to str.isprintable)
        "éßЖ中文🙂\u0301",  # letters of other scripts, an emoji, a combining mark
        "\ud800\udfff\U000e0080\u0378",  # lone surrogates, unassigned
    ]
    rng = random.Random(4)
    for _ in range(4000):
        chosen = rng.sample(pools, rng.randint(1, 3))
        s = "".join(rng.choice(rng.choice(chosen)) for _ in range(rng.randint(0, 12)))
        for keep in (False, True):
            assert printable(s, keep) == reference(s, keep), repr(s)
    assert printable("model.layers.0.q_proj") == "model.layers.0.q_proj"

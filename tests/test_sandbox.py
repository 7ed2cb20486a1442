"""What `tpa-dist sql`, report sections and the database options may touch: the tpa-dist database and nothing
else; results capped; foreign databases and existing files never overwritten; HTML escaped."""

from __future__ import annotations

import duckdb
import pytest
from click.testing import CliRunner

from tpa_dist.cli import main
from tpa_dist.compute.rows import ModelRecord
from tpa_dist.db.store import Store
from tpa_dist.jobs import Job
from tpa_dist.report.render import write_report


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    """A small tpa-dist database (one run of tiny-llama, no Ray needed: rows written directly)."""
    path = tmp_path_factory.mktemp("sandbox") / "t.duckdb"
    store = Store(path)
    store.start_run("r1", "test", {}, {}, "host")
    store.upsert_model(ModelRecord("m<script>", "r", num_shards=1, num_tensors=1, num_params=1, run_id="r1"))
    store.close()
    return path


def _sql(db, *args):
    res = CliRunner().invoke(main, ["sql", "--db", str(db), *args])
    assert "Traceback" not in res.output
    return res.exit_code, res.output


@pytest.mark.parametrize(
    "query",
    [
        "ATTACH '{victim}' AS v (READ_WRITE)",
        "COPY (SELECT 1) TO '{victim}'",
        "EXPORT DATABASE '{folder}/exported'",
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM glob('/etc/*')",
        "INSTALL httpfs",
        "SET enable_external_access = true",
        "PRAGMA threads = 1",
    ],
)
def test_sql_reads_the_database_and_nothing_else(db, tmp_path, query):
    victim = tmp_path / "victim.duckdb"
    con = duckdb.connect(str(victim))
    con.execute("CREATE TABLE precious AS SELECT 42 AS x")
    con.close()
    before = victim.read_bytes()
    code, out = _sql(db, query.format(victim=victim, folder=tmp_path))
    assert code == 2 and out.startswith("error: query failed:"), out
    assert victim.read_bytes() == before and not (tmp_path / "exported").exists()


def test_results_are_capped_with_a_note(db):
    code, out = _sql(db, "SELECT range AS i FROM range(50000)")
    assert code == 0 and "(10000 rows, result cut at 10,000 rows; --max-rows raises the cap)" in out
    code, out = _sql(db, "--max-rows", "20", "--format", "csv", "SELECT range AS i FROM range(50000)")
    assert code == 0 and len(out.strip().splitlines()) == 1 + 20 + 1


def test_sql_file_with_header_comments_and_models(db, tmp_path):
    section = tmp_path / "mine.sql"
    section.write_text(
        "-- title: mine\n-- shows: models\nSELECT model_id FROM models WHERE list_contains($models, model_id);\n",
        encoding="utf-8",
    )
    code, out = _sql(db, "--file", str(section), "--format", "csv")
    assert code == 0 and out.splitlines()[:2] == ["model_id", "m<script>"], out
    code, out = _sql(db, "--file", str(section), "--models", "other", "--format", "csv")
    assert code == 0 and out.strip() == "model_id"
    bad = tmp_path / "latin1.sql"
    bad.write_bytes("SELECT 'caf\xe9'".encode("latin-1"))
    code, out = _sql(db, "--file", str(bad))
    assert code == 2 and "not UTF-8" in out


def test_a_foreign_duckdb_file_is_never_written(tmp_path):
    other = tmp_path / "app.duckdb"
    con = duckdb.connect(str(other))
    con.execute("CREATE TABLE invoices AS SELECT 1 AS id")
    con.close()
    before = other.read_bytes()
    res = CliRunner().invoke(
        main,
        [
            "submit",
            "--models",
            "synth:tiny-llama",
            "--db",
            str(other),
            "--output-dir",
            str(tmp_path / "out"),
            "--no-progress",
        ],
    )
    assert res.exit_code == 2 and "DuckDB database of another application (tables: invoices)" in res.output
    assert other.read_bytes() == before
    res = CliRunner().invoke(main, ["status", "--db", str(other)])
    assert res.exit_code == 2 and "not a tpa-dist database" in res.output


def test_output_dir_that_is_a_file_is_refused_before_any_work(tmp_path):
    (tmp_path / "out").write_text("a file")
    res = CliRunner().invoke(
        main,
        [
            "submit",
            "--models",
            "synth:tiny-llama",
            "--db",
            str(tmp_path / "d.duckdb"),
            "--output-dir",
            str(tmp_path / "out"),
            "--no-progress",
        ],
    )
    assert res.exit_code == 2 and "exists and is not a folder" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "d.duckdb").exists()


def test_a_database_whose_wal_cannot_be_written_is_a_clear_error(db, tmp_path):
    path = tmp_path / "w.duckdb"
    Store(path).close()
    (tmp_path / "w.duckdb.wal").mkdir()  # the WAL cannot be created where DuckDB wants it
    res = CliRunner().invoke(
        main,
        [
            "submit",
            "--models",
            "synth:tiny-llama",
            "--db",
            str(path),
            "--output-dir",
            str(tmp_path / "out"),
            "--no-progress",
            "--no-embedding",
        ],
    )
    assert res.exit_code == 2 and "Traceback" not in res.output and str(path) in res.output, res.output


def test_export_never_overwrites_without_force(db, tmp_path):
    target = tmp_path / "runs.csv"
    target.write_text("keep me")
    args = ["export", "--db", str(db), "--format", "csv", "--out", str(target), "--table", "runs"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2 and "exists (--force overwrites it)" in res.output and target.read_text() == "keep me"
    res = CliRunner().invoke(main, [*args, "--force"])
    assert res.exit_code == 0 and target.read_text().startswith("run_id")


def test_report_sections_are_sandboxed_and_html_escaped(db, tmp_path):
    mine = tmp_path / "sections"
    mine.mkdir()
    (mine / "a.sql").write_text(
        "-- title: <script>alert(1)</script>\n-- shows: <b>x</b>\n"
        "SELECT '<img src=x onerror=alert(1)>' AS \"<i onmouseover=1>\", model_id FROM models;\n"
    )
    (mine / "b.sql").write_text("-- title: steal\nSELECT * FROM read_text('/etc/passwd');\n")
    rendered = write_report(db, tmp_path / "rep", ["m<script>"], (mine,))
    errors = {r.section.title: r.error for r in rendered}
    assert "Permission Error" in (errors["steal"] or "")
    html = (tmp_path / "rep" / "report.html").read_text(encoding="utf-8")
    for raw in ("<script>alert(1)", "<img src=x", "<i onmouseover", "<b>x</b>", "m<script>"):
        assert raw not in html, raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "root:" not in html


def test_job_api_checks_models():
    with pytest.raises(Exception, match="non-empty string"):
        Job.create(models=("",))


def _export(db, out, *args):
    res = CliRunner().invoke(main, ["export", "--db", str(db), "--format", "csv", "--out", str(out), *args])
    assert "Traceback" not in res.output
    return res.exit_code, res.output


def test_export_query_is_sandboxed_and_writes_only_its_out(db, tmp_path, monkeypatch):
    """The red team's export attacks: reading the environment, closing the COPY to write another file, chaining an
    ATTACH to delete another database's rows. The query runs in the sandbox and is never pasted into other SQL."""
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value")
    out = tmp_path / "x.csv"
    code, text = _export(db, out, "--query", "SELECT * FROM read_text('/proc/self/environ')")
    assert code == 2 and "file system operations are disabled" in text and not out.exists()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    escape = f"SELECT 'x' AS x) TO '{victim}' (FORMAT csv); COPY (SELECT 1"
    code, text = _export(db, out, "--query", escape)
    assert code == 2 and text.startswith("error: query failed:") and victim.read_text() == "precious"
    other = tmp_path / "other.duckdb"
    Store(other).close()
    con = duckdb.connect(str(other))
    con.execute("INSERT INTO settings VALUES ('s', '{}')")
    con.close()
    chained = f"SELECT 1 AS x; ATTACH '{other}' AS o (READ_WRITE); DELETE FROM o.settings"
    code, text = _export(db, out, "--query", chained)
    assert code == 2 and "one statement at a time: this text holds 3 (SELECT, ATTACH, DELETE)" in text, text
    con = duckdb.connect(str(other), read_only=True)
    assert con.execute("SELECT count(*) FROM settings").fetchone() == (1,)
    con.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.duckdb", "victim.txt"]  # nothing else written
    code, text = _export(db, out, "--query", "SELECT model_id, run_id FROM models")
    assert code == 0 and out.read_text().splitlines() == ["model_id,run_id", "m<script>,r1"]
    code, text = _export(db, out, "--query", "SELECT 2 AS y")  # never over a file without --force
    assert code == 2 and "exists (--force overwrites it)" in text and out.read_text().startswith("model_id")
    code, text = _export(db, out, "--query", "SELECT 2 AS y", "--force")
    assert code == 0 and out.read_text().splitlines() == ["y", "2"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temporary file left behind


def test_sql_is_bounded_in_rows_bytes_memory_and_time(db):
    """Results stream in small batches cut at the caps (DuckDB stops at the row cap: 2,048 rows of 2 MB were
    8 GB before); memory beyond --memory-mib and time beyond --timeout end the query with a clear line."""
    import subprocess
    import sys
    import time

    t0 = time.monotonic()
    huge = "SELECT repeat('x', 2000000) AS s FROM range(2048)"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tpa_dist", "sql", "--db", str(db), huge, "--max-rows", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    peak = 0  # its resident memory, sampled while it runs (getrusage's peak would include this session's, forked)
    while proc.poll() is None:
        try:
            rss = next(line for line in open(f"/proc/{proc.pid}/status") if line.startswith("VmRSS:"))
            peak = max(peak, int(rss.split()[1]))
        except (OSError, StopIteration):
            pass
        time.sleep(0.01)
    out = proc.stdout.read()
    assert proc.returncode == 0 and "result cut at 3 rows" in out and time.monotonic() - t0 < 60, out
    assert peak < 1_000_000  # KiB: nothing near the 8 GB of before was held
    code, out = _sql(db, "SELECT repeat('x', 1000000) AS s FROM range(100)", "--max-mib", "2")
    assert code == 0 and "result cut at 2 MiB; --max-mib raises the cap" in out
    doubling = "WITH RECURSIVE r(s) AS (SELECT 'x' UNION ALL SELECT s || s FROM r WHERE length(s) < 1e12) "
    code, out = _sql(db, doubling + "SELECT max(length(s)) FROM r", "--memory-mib", "256")
    assert code == 2 and "query needs more memory than its limit (256 MiB)" in out and "INTERNAL" not in out, out
    counting = "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 1e9) SELECT count(*) FROM r"
    t0 = time.monotonic()
    code, out = _sql(db, counting, "--timeout", "1")
    assert code == 2 and "query interrupted after 1 s (--timeout raises the limit" in out
    assert time.monotonic() - t0 < 15
    for bad in (["--max-rows", "-1"], ["--max-rows", "0"], ["--max-mib", "0"], ["--timeout", "0"]):
        code, out = _sql(db, "SELECT 1", *bad)
        assert code == 2 and "Invalid value" in out, (bad, out)
    code, out = _sql(db, "SELECT 1; SELECT 2")
    assert code == 2 and "one statement at a time: this text holds 2 (SELECT, SELECT)" in out


def test_ctrl_c_ends_a_running_query_within_a_second(db):
    import os
    import signal
    import subprocess
    import sys
    import time

    counting = "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 1e9) SELECT count(*) FROM r"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tpa_dist", "-v", "sql", "--db", str(db), counting],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    for line in proc.stdout:  # the debug line says the query is running
        if "query running" in line:
            break
    t0 = time.monotonic()
    os.kill(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert time.monotonic() - t0 < 1.5, out
    assert proc.returncode == 130 and out.strip().endswith("interrupted") and "Traceback" not in out, out

"""The installed package, as a user gets it: a wheel installed non-editable into a fresh folder and run from
another directory — never the source tree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Build the wheel (`pip wheel --no-deps .`) and install it with --target into a fresh folder."""
    work = tmp_path_factory.mktemp("install")
    wheels = work / "wheels"
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(ROOT)],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = wheels.glob("tpa_dist-*.whl")
    target = work / "site"
    inst = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
    )
    assert inst.returncode == 0, inst.stderr[-3000:]
    run_dir = work / "elsewhere"
    run_dir.mkdir()
    return {"wheel": wheel, "site": target, "cwd": run_dir}


def _cli(installed: dict[str, Path], *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(installed["site"]), RAY_AUTH_MODE="disabled")
    env.pop("RAY_ADDRESS", None)
    return subprocess.run(
        [sys.executable, "-m", "tpa_dist", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=installed["cwd"],
        timeout=600,
    )


def test_the_wheel_holds_every_sql_file(installed):
    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    expected = {"tpa_dist/sql/" + p.relative_to(ROOT / "sql").as_posix() for p in (ROOT / "sql").rglob("*.sql")}
    assert expected and expected <= names, sorted(expected - names)


def test_installed_package_runs_from_another_directory(installed):
    probe = _cli(installed, "--version")
    assert probe.returncode == 0 and probe.stdout.strip() == "tpa-dist, version 0.1.0", probe.stderr
    where = subprocess.run(
        [
            sys.executable,
            "-c",
            "import tpa_dist, tpa_dist.db.sqlfiles as s; print(tpa_dist.__file__); print(s.sql_root())",
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(installed["site"])),
        cwd=installed["cwd"],
    )
    module, sql_root = where.stdout.split()
    assert module.startswith(str(installed["site"])) and sql_root.startswith(str(installed["site"])), where.stdout

    sub = _cli(installed, "submit", "--models", "synth:tiny-llama", "--no-progress", "--quiet", "--k-range", "2:6")
    assert sub.returncode == 0, sub.stdout[-2000:] + sub.stderr[-3000:]
    assert "21/21 analyzed" in sub.stdout and "Traceback" not in sub.stderr
    db = installed["cwd"] / "data" / "tpa.duckdb"
    assert db.is_file()

    status = _cli(installed, "status")
    assert status.returncode == 0 and " ok " in status.stdout, status.stdout + status.stderr

    report = _cli(installed, "report", "--out", "rep")
    files = sorted((ROOT / "sql" / "reports").glob("[0-9][0-9]_*.sql"))
    sections = sum("-- optional: true" not in f.read_text(encoding="utf-8") for f in files)
    assert report.returncode == 0, report.stdout + report.stderr
    assert f"{sections} sections" in report.stdout
    html = (installed["cwd"] / "rep" / "report.html").read_text(encoding="utf-8")
    assert html.count("<h2") >= sections and "class='error'" not in html

    export = _cli(installed, "export", "--format", "json", "--out", "runs.json", "--table", "runs")
    assert export.returncode == 0, export.stderr
    assert json.loads((installed["cwd"] / "runs.json").read_text())[0]["status"] == "ok"

    sql = _cli(installed, "sql", "--format", "json", "SELECT count(*) AS n FROM matrix_analysis WHERE kind = 'matrix'")
    assert sql.returncode == 0 and json.loads(sql.stdout) == [{"n": 16}], sql.stdout + sql.stderr  # + 5 vectors

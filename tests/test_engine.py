"""One engine for all work, as a user meets it: a matrix that kills its worker process every time it is analyzed
(as a real crashing tensor would) fails alone — on the local pool and on Ray alike, in the matrix phase and in
the embedding phase — and the run ends with exit 1, never hangs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest


def _submit(tmp_path: Path, executor: str, killer: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        TPA_DIST_EXECUTOR=executor,
        TPA_DIST_INJECT_KILL=killer,  # no marker: it kills its worker every time it is analyzed
        TPA_DIST_INJECT_DELAY_S="0.05",
        RAY_AUTH_MODE="disabled",
    )
    env.pop("RAY_ADDRESS", None)
    cmd = [
        sys.executable,
        "-m",
        "tpa_dist",
        "submit",
        "--models",
        "synth:tiny-qwen3",
        "--db",
        str(tmp_path / "e.duckdb"),
    ]
    cmd += ["--output-dir", str(tmp_path / "out"), "--no-progress", "--no-report", "--num-workers", "2", *args]
    return subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)


def _rows(db: Path) -> dict[str, tuple[str, str | None]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute("SELECT matrix_key, status, error FROM matrix_analysis").fetchall()
        embedded = con.execute("SELECT count(*) FROM embedding_choice").fetchone()[0]
    finally:
        con.close()
    return {k: (s, e) for k, s, e in rows}, embedded


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["local", "ray"])
def test_only_the_matrix_that_kills_its_worker_fails(tmp_path, executor):
    killer = "model.layers.0.self_attn.q_proj.weight"
    proc = _submit(tmp_path, executor, killer, "--no-embedding")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    rows, _ = _rows(tmp_path / "e.duckdb")
    failed = {k: e for k, (s, e) in rows.items() if s != "ok"}
    assert failed == {
        killer: f"tensor {killer}: the worker process died while analyzing it, 3 times ({'killed by signal 9' if executor == 'local' else 'ActorDiedError'})"
    }, out
    assert len(rows) > 20 and "node was lost" not in out and "lost mid-run" not in out, out
    assert "Traceback" not in out, out


@pytest.mark.slow
def test_an_embedding_that_kills_its_worker_fails_alone_and_the_run_ends(tmp_path):
    """The embedding step is work like any other: on the local pool its worker dies under it three times, it fails
    with the reason, the matrix of the same name fails, everything else is stored, exit 1."""
    killer = "model.embed_tokens.weight"
    proc = _submit(tmp_path, "local", killer)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    rows, embedded = _rows(tmp_path / "e.duckdb")
    assert {k for k, (s, _) in rows.items() if s != "ok"} == {killer}, out
    assert embedded == 0
    assert f"embedding analysis failed: {killer}: the worker process died while analyzing it, 3 times" in out, out


_WHAT_IT_IMPORTS = r"""
import json, sys
import tpa_dist
from tpa_dist.jobs import Job
from tpa_dist.run.actors import AnalysisWorker
from tpa_dist.settings import AnalysisSettings

job = Job.create(models=("synth:tiny-llama",), db=sys.argv[1], progress=False, embedding=False, report=False)
summary = tpa_dist.submit(job)
driver = {name: name in sys.modules for name in ("ray", "matplotlib", "scipy", "pandas")}
AnalysisWorker(AnalysisSettings())  # what a local pool's forked worker builds
print(json.dumps({"ok": summary.ok, "done": summary.done, "driver": driver, "worker_ray": "ray" in sys.modules}))
"""


def test_a_small_model_on_the_local_pool_imports_neither_ray_nor_matplotlib(tmp_path):
    """A local-pool submit without a report pays for what it uses: no Ray (0.4 s) in the driver or in a worker, no
    matplotlib, no scipy (the embedding step's), no pandas (pyarrow's first conversion would import it: 0.4 s)."""
    import json

    env = {k: v for k, v in os.environ.items() if k not in ("TPA_DIST_EXECUTOR", "RAY_ADDRESS")}
    out = subprocess.run(
        [sys.executable, "-c", _WHAT_IT_IMPORTS, str(tmp_path / "i.duckdb")],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    facts = json.loads(out.stdout.strip().splitlines()[-1])
    assert facts["ok"] and facts["done"] == 21, out.stderr
    assert facts["driver"] == {"ray": False, "matplotlib": False, "scipy": False, "pandas": False}, facts
    assert facts["worker_ray"] is False

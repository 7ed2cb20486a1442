"""The drawing server (report/drawserver.py): a submit's figures — the report's and each model's embedding figures —
drawn by a process forked at its start, which imported matplotlib on a spare core — the run itself never imports it — and, when that server is gone, drawn by the
run itself: the report is whole either way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = r"""
import json, os, signal, sys
from pathlib import Path
from tpa_dist.report import drawserver
drawserver.start()
import tpa_dist
from tpa_dist.jobs import Job

work = Path(sys.argv[1])
def run(name):
    job = Job.create(models=("synth:tiny-llama",), db=str(work / f"{name}.duckdb"), output_dir=str(work / name),
                     progress=False, k_min=2, k_max=4)
    summary = tpa_dist.submit(job)
    return {"ok": summary.ok, "pngs": sorted(str(p.relative_to(work / name)) for p in (work / name).rglob("*.png"))}

served = run("served")
facts = {"served": served, "matplotlib_here": "matplotlib" in sys.modules, "server": drawserver.running() is not None}
os.kill(drawserver.running().proc.pid, signal.SIGKILL)  # the server lost: the next report is drawn here
drawserver.running() is None or drawserver._server.proc.join(10)
facts["alone"] = run("alone")
facts["matplotlib_after"] = "matplotlib" in sys.modules
print(json.dumps(facts))
"""


def test_a_submit_draws_its_figures_in_the_drawing_server_and_without_it(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("TPA_DIST_EXECUTOR", "RAY_ADDRESS")}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, env=env, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    facts = json.loads(out.stdout.strip().splitlines()[-1])
    assert facts["server"] and facts["served"]["ok"], facts
    assert len(facts["served"]["pngs"]) >= 5, facts  # every figure of the report, drawn by the server
    per_model = {Path(p).name for p in facts["served"]["pngs"] if "/" in p}  # the embedding step's figures too
    assert per_model == {"anova_curve.png", "embedding_projection.png"}, facts
    assert facts["matplotlib_here"] is False  # the run itself never imported matplotlib
    assert facts["alone"]["ok"] and facts["alone"]["pngs"] == facts["served"]["pngs"], facts
    assert facts["matplotlib_after"] is True  # drawn here once the server was gone


REPORT_SCRIPT = r"""
import json, sys
from pathlib import Path
import tpa_dist
from tpa_dist.cli import main
from tpa_dist.jobs import Job
from tpa_dist.report import drawserver

work = Path(sys.argv[1])
db = str(work / "r.duckdb")
job = Job.create(models=("synth:tiny-llama",), db=db, output_dir=str(work / "first"), progress=False, embedding=False,
                 report=False)
assert tpa_dist.submit(job).ok and "matplotlib" not in sys.modules
code = 0
try:
    main(["report", "--db", db, "--out", str(work / "out")], standalone_mode=False)
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "server": drawserver.running() is not None, "matplotlib_here": "matplotlib" in sys.modules,
                  "pngs": sorted(p.name for p in (work / "out").glob("*.png"))}))
"""


def test_the_report_command_draws_in_the_drawing_server(tmp_path):
    """`tpa-dist report` starts the drawing server first thing, as submit does: its figures are drawn there and the
    command's own process never imports matplotlib."""
    env = {k: v for k, v in os.environ.items() if k not in ("TPA_DIST_EXECUTOR", "RAY_ADDRESS")}
    out = subprocess.run(
        [sys.executable, "-c", REPORT_SCRIPT, str(tmp_path)], capture_output=True, text=True, env=env, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    facts = json.loads(out.stdout.strip().splitlines()[-1])
    assert facts["code"] == 0 and facts["server"], facts
    assert len(facts["pngs"]) >= 5, facts
    assert facts["matplotlib_here"] is False, facts

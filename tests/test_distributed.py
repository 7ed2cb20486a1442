"""Distributed execution: GPU routing with CPU fallback, killed workers and drivers, several nodes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from tpa_dist.cli import main
from tpa_dist.run.driver import submit

from .conftest import quiet_job, start_slow_submit, wait_until_stored

ROOT = Path(__file__).resolve().parent.parent


def _scenario(name: str, work: Path, timeout: int = 1200) -> dict:  # an upper bound for a hang (a loaded machine)
    env = dict(os.environ, RAY_AUTH_MODE="disabled", PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "tests.scenarios", name, str(work)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    facts = [line for line in proc.stdout.splitlines() if line.startswith("FACTS ")]
    assert proc.returncode == 0 and facts, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(facts[-1][len("FACTS ") :])


def _once(rows: list[dict]) -> bool:
    return all(c == 1 for c in Counter((r["model_id"], r["matrix_key"]) for r in rows).values())


def test_fake_gpu_oom_falls_back_to_cpu_and_planner_routes(tmp_path):
    facts = _scenario("gpu_fallback", tmp_path)
    assert facts["ok"] == [True] * 5
    # ΔW pairs run on GPU workers too; an OOM re-runs the pair, exactly, on a CPU worker
    gpu, cpu = facts["delta"], facts["delta_cpu"]
    assert len(gpu) == len(cpu) == 16 and {r["status"] for r in gpu} == {"ok"}
    assert {r["device"] for r in gpu} == {"fake-gpu", "cpu"} and {r["device"] for r in cpu} == {"cpu"}
    for g, c in zip(gpu, cpu):
        assert g["matrix_key"] == c["matrix_key"] and g["actual_rank"] == c["actual_rank"]
        assert g["intruders"] == c["intruders"]
        assert g["relative_update"] == pytest.approx(c["relative_update"], rel=1e-9, abs=1e-15)
    oom = [r for r in facts["oom"] if r["kind"] == "matrix"]
    assert _once(facts["oom"]) and len(oom) == 16
    for r in oom:
        if r["nbytes"] > 10000:  # injected OOM: re-run exactly on the CPU pool, and recorded
            assert (r["device"], r["fallback_reason"], r["status"]) == ("cpu", "cuda_oom", "ok"), r
        else:
            assert (r["device"], r["fallback_reason"]) == ("fake-gpu", None), r
    assert {r["fallback_reason"] for r in oom} == {None, "cuda_oom"}
    assert {r["device"] for r in facts["cpu_only"]} == {"cpu"} and len(facts["cpu_only"]) >= 16
    # the planner routes by each batch's share of the free memory (400,000 bytes): the attention matrices fit it, the
    # embedding, the head and the MLP do not. Default: one GPU worker runs 4 batches at once (CUDA streams), each
    # planned with a quarter of the free memory; --gpus-per-worker 0.5 --gpu-streams 1: 2 worker processes share the
    # GPU, half each — the same routing
    for name, gpu_workers in (("shared", 1), ("fractional", 2)):
        rows = {r["matrix_key"]: r for r in facts[name] if r["kind"] == "matrix"}
        assert _once(facts[name]) and len(rows) == 16
        assert rows["model.layers.0.self_attn.q_proj.weight"]["device"] == "fake-gpu"
        for key in ("model.embed_tokens.weight", "lm_head.weight", "model.layers.0.mlp.up_proj.weight"):
            assert (rows[key]["device"], rows[key]["fallback_reason"]) == ("cpu", "gpu_memory"), (name, rows[key])
        assert len({r["worker"] for r in rows.values() if r["device"] == "fake-gpu"}) <= gpu_workers


@pytest.mark.slow
def test_three_node_cluster_spreads_work_and_survives_node_loss(tmp_path):
    facts = _scenario("cluster", tmp_path)
    assert facts["spread_ok"] and _once(facts["spread"])
    assert len({r["node"] for r in facts["spread"]}) >= 2  # work on more than one node
    # tensors of one shard prefer one node (its page cache; idle workers still steal): most rows ran on their
    # shard's dominant node — round-robin placement over 3 nodes would give about a third
    by_shard: dict[str, Counter] = {}
    for r in facts["spread"]:
        by_shard.setdefault(r["shard"], Counter())[r["node"]] += 1
    local = sum(nodes.most_common(1)[0][1] for nodes in by_shard.values())
    assert local >= 0.6 * len(facts["spread"]), by_shard
    assert len([r for r in facts["spread"] if r["kind"] == "matrix"]) == 36
    assert facts["removed_ok"], facts
    assert 5 <= facts["stored_at_removal"] < facts["removed_total"]  # the node went while the run was in flight
    assert _once(facts["removed"]) and len(facts["removed"]) == facts["removed_total"] == 51
    assert all(r["status"] == "ok" for r in facts["removed"])


def test_killed_worker_is_restarted_and_work_rerun(ray_session, synth_models, tmp_path, monkeypatch):
    marker = tmp_path / "killed"
    monkeypatch.setenv("TPA_DIST_INJECT_KILL", "model.layers.1.mlp.down_proj")
    monkeypatch.setenv("TPA_DIST_INJECT_KILL_MARKER", str(marker))
    job = quiet_job(tmp_path / "k.duckdb", (str(synth_models["tiny-llama"]),), tmp_path / "out", embedding=False)
    summary = submit(job)
    assert marker.exists(), "the worker was never killed"
    assert summary.ok, summary.describe()
    con = duckdb.connect(job.db, read_only=True)
    keys = con.execute("SELECT matrix_key, count(*), min(status) FROM matrix_analysis GROUP BY 1").fetchall()
    con.close()
    assert len(keys) == 21 and all(n == 1 and s == "ok" for _, n, s in keys)


@pytest.mark.parametrize("kill_after", [1, 5, 24])  # early, mid-run and late kill points
def test_killed_driver_resumes_without_recomputing(ray_session, tmp_path, kill_after):
    db = tmp_path / "resume.duckdb"
    hold = {"TPA_DIST_INJECT_HOLD": "model.norm.weight", "TPA_DIST_INJECT_HOLD_UNTIL": str(tmp_path / "never")}
    proc = start_slow_submit(  # the last task is held back, so the run is still going whenever the kill comes
        db, tmp_path / "out", hold, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    stored_before = wait_until_stored(db, kill_after, timeout=600)
    # another process reading while the run writes: a clear answer, no traceback, the run unharmed
    runner = CliRunner()
    live = runner.invoke(main, ["status", "--db", str(db)])
    query = runner.invoke(main, ["sql", "--db", str(db), "SELECT count(*) FROM matrix_analysis"])
    still_running = proc.poll() is None
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert kill_after <= stored_before < 41, "the driver finished before it could be killed"
    assert still_running
    assert live.exit_code == 0 and "in flight" in live.output and "/41 matrices" in live.output, live.output
    assert query.exit_code == 2 and "locked by another process" in query.output and "Traceback" not in query.output
    after = runner.invoke(main, ["status", "--db", str(db)])
    assert "running" in after.output and "no longer running" in after.output, after.output
    job = quiet_job(db, ("synth:tiny-mixtral",), tmp_path / "out", embedding=False)
    resumed = submit(job)
    assert resumed.ok
    assert resumed.reused >= stored_before  # what was stored before the kill is not recomputed
    assert resumed.done == resumed.total - resumed.reused  # computations counted
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute("SELECT count(*), count(DISTINCT matrix_key) FROM matrix_analysis").fetchone()
    runs = con.execute("SELECT status FROM runs ORDER BY started_at").fetchall()
    con.close()
    assert rows == (41, 41)
    assert runs == [("abandoned",), ("ok",)]  # the killed run is marked abandoned by the next submit


def test_a_recorded_cluster_never_breaks_a_local_submit(tmp_path):
    facts = _scenario("stray_cluster", tmp_path)
    assert facts["recorded"], "the Cluster did not record itself in /tmp/ray/ray_current_cluster"
    assert facts["returncode"] == 0, facts["output"]
    assert "Traceback" not in facts["output"] and "Token authentication" not in facts["output"]
    assert facts["nodes"] and not set(facts["nodes"]) & set(facts["cluster_nodes"])  # its own Ray, not the cluster


def test_an_unreachable_ray_address_is_one_clear_line(tmp_path):
    env = dict(os.environ, RAY_ADDRESS="127.0.0.1:9", RAY_AUTH_MODE="disabled")
    cmd = [
        sys.executable,
        "-m",
        "tpa_dist",
        "submit",
        "--models",
        "synth:tiny-llama",
        "--db",
        str(tmp_path / "r.duckdb"),
        "--output-dir",
        str(tmp_path / "out"),
        "--no-progress",
        "--no-embedding",
        "--quiet",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "cannot connect to the Ray cluster at '127.0.0.1:9' (from RAY_ADDRESS)" in proc.stderr
    assert "Traceback" not in proc.stderr
    env.pop("RAY_ADDRESS")
    proc = subprocess.run(
        cmd + ["--address", "127.0.0.1:9"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=900
    )
    assert proc.returncode == 2 and "(from --address)" in proc.stderr and "Traceback" not in proc.stderr

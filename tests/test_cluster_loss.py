"""A real cluster losing what a run needs, as users meet it: every worker, then its head; addresses that are not a
cluster's, tokens it rejects. (Split from test_cluster.py so that the two test processes share the cluster tests
evenly.)"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from .raycluster import RayProcesses, free_port
from .test_cluster import Console, _rows, _run_record, _submit


def _stored(db: Path, at_least: int = 1, timeout: float = 300) -> int:
    """Wait until the running submit has published `at_least` stored matrices (its live progress file, written
    after every stored batch): an event, not a time."""
    from tpa_dist.db.live import live_progress

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        live = live_progress(db)
        if live is not None and live.done >= at_least:
            return live.done
        time.sleep(0.1)
    raise AssertionError(f"no {at_least} stored matrices within {timeout} s")


_HOLDER = """
import ray, sys, time
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
@ray.remote(num_cpus=1)
class Holder:
    def ping(self):
        return 1
holder = Holder.remote()
ray.get(holder.ping.remote())
print("holding", flush=True)
time.sleep(3600)
"""


@pytest.mark.slow
def test_a_shared_cluster_that_loses_every_worker_then_its_head(tmp_path):
    """A production set-up: a head with --num-cpus 0, one worker node, another job holding one of its CPUs.
    - The run starts on the worker that was placed and says that the other is not placed yet (no 120 s stall).
    - The worker node is SIGKILLed: the loss line says no worker is left; after --wait-for-workers the queued
      matrices *and the embedding phase* fail with the reason, the run ends (exit 1, recorded failed) — no hang.
    - A second run on a fresh worker node; the head (GCS and raylet) is SIGKILLed: within 60 s one line says the
      cluster is lost with the matrices stored, exit 1, recorded failed, and what finished before is stored."""
    with RayProcesses() as cluster:
        cluster.head(num_cpus=0).worker("w1", num_cpus=2)
        cluster.wait_for_nodes(2)
        holder = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, cluster.address], env=cluster.env, stdout=subprocess.PIPE, text=True
        )
        try:
            assert holder.stdout.readline().strip() == "holding"
            slow = {"TPA_DIST_INJECT_DELAY_S": "0.3"}
            args = ("--address", cluster.address, "--num-workers", "2", "--wait-for-workers", "5")
            console = Console(_submit(cluster, tmp_path, "synth:tiny-qwen3", slow, *args, embedding=True))
            console.wait_for("not placed yet")
            _stored(tmp_path / "c.duckdb")  # work started on the one worker placed
            cluster.kill_node("w1")
            out = console.finish(timeout=300)
        finally:
            holder.kill()
        assert console.proc.returncode == 1, out
        assert "no worker is left" in out, out
        status, failed, done, total = _run_record(tmp_path / "c.duckdb")
        assert status == "failed" and failed > 0 and done > 0 and done + failed == total, out
        assert "embedding analysis failed" in out and "no worker left to run it" in out, out
        assert "Traceback" not in out, out

        cluster.worker("w2", num_cpus=1)
        cluster.wait_for_nodes(2)
        console = Console(_submit(cluster, tmp_path, "synth:tiny-qwen3", slow, *args[:2], db="h.duckdb"))
        _stored(tmp_path / "h.duckdb")
        victims = cluster.pids("gcs_server") + cluster.kill_node("head")
        for pid in victims:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        t0 = time.monotonic()
        out = console.finish(timeout=300)
        took = time.monotonic() - t0
    assert console.proc.returncode == 1 and took < 60, (took, out)
    assert re.search(
        rf"error: lost the Ray cluster at {re.escape(cluster.address)} \(its head is gone\): [1-9]\d* matrices "
        "stored, run again to resume",
        out,
    ), out
    assert "rpc_client" not in out and "Traceback" not in out, out
    status, _failed, done, _total = _run_record(tmp_path / "h.duckdb")
    assert status == "failed" and done > 0
    assert len(_rows(tmp_path / "h.duckdb")) == done


@pytest.mark.slow
def test_addresses_say_which_cluster_and_fail_in_one_line(tmp_path):
    """`--address auto` says which cluster it joined; SIGTERM ends a joined run cleanly; a cluster that wants a token,
    a token it rejects, the job server's port (an HTTP server answers there), an http:// URL and a stale RAY_ADDRESS
    read by `auto` are one line each, exit 2, saying what to do, all five side by side within 20 s (a rejected or
    missing token is asked of the GCS before ray.init, which would retry it for ~21 s)."""
    with RayProcesses() as cluster:
        cluster.head(num_cpus=1)
        joined = _submit(cluster, tmp_path, "synth:tiny-llama", {"RAY_ADDRESS": cluster.address}, "--address", "auto")
        out, _ = joined.communicate(timeout=600)
        assert joined.returncode == 0, out
        assert (
            f"joined the Ray cluster at {cluster.address} (RAY_ADDRESS, read by --address auto): "
            "1 node(s), 1 CPU(s), 0 GPU(s)"
        ) in out
        # a stop (SIGTERM: `ray job stop`, a batch system) ends a run on a cluster cleanly: Ray's driver takes
        # SIGTERM for a stack trace of its own, tpa-dist takes it back
        release = tmp_path / "never"
        held = {"TPA_DIST_INJECT_HOLD": "model.norm", "TPA_DIST_INJECT_HOLD_UNTIL": str(release)}
        console = Console(
            _submit(cluster, tmp_path, "synth:tiny-llama", held, "--address", cluster.address, db="t.duckdb")
        )
        console.wait_for("workers: 0 GPU, 1 CPU")
        console.proc.terminate()
        out = console.finish(timeout=120)
        assert console.proc.returncode == 143, out
        assert "interrupted by SIGTERM: every stored batch is kept" in out and "SIGTERM received" not in out, out
        assert _run_record(tmp_path / "t.duckdb")[0] == "interrupted"
        # the refusals are independent: their submits run side by side, each must answer in one line in time
        import http.server

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        no_token = {"RAY_AUTH_MODE": None, "RAY_AUTH_TOKEN": None, "HOME": str(tmp_path)}  # a machine without it
        stale = f"127.0.0.1:{free_port()}"
        cases = {
            "wrong-token": ({"RAY_AUTH_TOKEN": "0" * 64}, cluster.address),  # token mode set, not its token
            "http-server": ({}, f"127.0.0.1:{server.server_address[1]}"),  # the job server's port answers HTTP
            "http-url": ({}, "http://127.0.0.1:8265"),
            "no-token": (no_token, cluster.address),
            "stale": ({"RAY_ADDRESS": stale}, "auto"),
        }
        t0 = time.monotonic()
        procs = {
            name: _submit(cluster, tmp_path, "synth:tiny-llama", env, "--address", address, db=f"{name}.duckdb")
            for name, (env, address) in cases.items()
        }
        try:
            outs = {name: (proc.communicate(timeout=120)[0], proc.returncode) for name, proc in procs.items()}
        finally:
            server.shutdown()
        took = time.monotonic() - t0
    assert took < 20, (took, outs)  # 6 s beside two CPU hogs; ray.init alone retries a rejected token for ~21 s
    for name, (out, code) in outs.items():
        lines = [line for line in out.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (name, out)
        assert "Traceback" not in out and "gcs_client" not in out, (name, out)
    out = outs["wrong-token"][0]
    assert "rejected this machine's authentication token" in out and "set RAY_AUTH_MODE" not in out, out
    for name in ("http-server", "http-url"):
        out = outs[name][0]
        assert "--address takes the Ray cluster's GCS address HOST:PORT (port 6379" in out, out
        assert "ray job submit --address" in out, out
    out = outs["no-token"][0]
    assert "requires token authentication: set RAY_AUTH_MODE=token" in out and "ray get-auth-token" in out, out
    out = outs["stale"][0]
    assert f"cannot connect to the Ray cluster at '{stale}' (from RAY_ADDRESS, read by --address auto)" in out, out

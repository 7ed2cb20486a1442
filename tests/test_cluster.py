"""A real cluster as users run one: `ray start` processes with token authentication, a node killed by SIGKILL
mid-run, an autoscaler that adds a GPU node during a submit, addresses that cannot be joined, cluster.yaml."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from .raycluster import RayProcesses, fake_autoscaling_config

ROOT = Path(__file__).resolve().parent.parent
LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d ")


def _submit(
    cluster: RayProcesses,
    work: Path,
    models: str,
    env: dict[str, str | None],
    *args: str,
    db: str = "c.duckdb",
    embedding: bool = False,
) -> subprocess.Popen:
    """`tpa-dist submit` as a user runs it, with the cluster's client environment changed by `env` (None: unset)."""
    cmd = [sys.executable, "-m", "tpa_dist", "submit", "--models", models, "--db", str(work / db)]
    cmd += ["--output-dir", str(work / "out"), "--no-progress", "--quiet", "--no-report", *args]
    cmd += [] if embedding else ["--no-embedding"]
    full = {k: v for k, v in {**cluster.env, **env}.items() if v is not None}
    return subprocess.Popen(cmd, env=full, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _rows(db: Path) -> list[dict]:
    con = duckdb.connect(str(db), read_only=True)
    cur = con.execute("SELECT model_id, matrix_key, status, device, node FROM matrix_analysis")
    cols = [d[0] for d in cur.description]
    rows = [dict(zip(cols, r)) for r in cur.fetchall()]
    con.close()
    return rows


def _run_record(db: Path) -> tuple:
    con = duckdb.connect(str(db), read_only=True)
    record = con.execute(
        "SELECT status, matrices_failed, matrices_done, matrices_total FROM runs ORDER BY started_at DESC LIMIT 1"
    ).fetchone()
    con.close()
    return record


def _node_ids(cluster: RayProcesses) -> dict[str, str]:
    code = "import ray,sys,json; ray.init(address=sys.argv[1], logging_level='ERROR', log_to_driver=False); "
    code += "print(json.dumps({n['NodeName']: n['NodeID'] for n in ray.nodes()}))"
    proc = subprocess.run(
        [sys.executable, "-c", code, cluster.address], env=cluster.env, capture_output=True, text=True, timeout=120
    )
    import json

    return json.loads(proc.stdout.strip().splitlines()[-1])


class Console:
    """A running submit's console, read line by line on a thread: a test waits for a line (an event), not a time."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self.lines.append(None)
            self._changed.notify_all()

    def wait_for(self, text: str, timeout: float = 300) -> str:
        """The first line holding `text`, waiting for it."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if line is None:
                        raise AssertionError(f"the submit ended before printing {text!r}:\n{self.text}")
                    if text in line:
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no line with {text!r} within {timeout} s:\n{self.text}")
                self._changed.wait(left)

    def cpu_workers_ready(self) -> int:
        """CPU workers the console has announced: those ready at the start (`workers: G GPU, C CPU`) and each one
        ready later (`a new CPU worker is ready on …`) — a starved machine starts some after the start's grace."""
        lines = [line for line in self.lines if line is not None]
        first = next((int(m.group(1)) for line in lines if (m := re.search(r"workers: \d+ GPU, (\d+) CPU", line))), 0)
        return first + sum("a new CPU worker is ready on" in line for line in lines)

    def wait_for_cpu_workers(self, n: int, timeout: float = 300) -> None:
        """Until `n` CPU workers are ready (announced on the console), waiting for them."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.cpu_workers_ready() < n:
                if None in self.lines:
                    raise AssertionError(f"the submit ended with fewer than {n} CPU workers ready:\n{self.text}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"fewer than {n} CPU workers ready within {timeout} s:\n{self.text}")
                self._changed.wait(left)

    def finish(self, timeout: float = 900) -> str:
        self.proc.wait(timeout=timeout)  # an upper bound for a hang
        self._thread.join(timeout=60)
        return self.text

    @property
    def text(self) -> str:
        return "\n".join(line for line in self.lines if line is not None)


@pytest.mark.slow
@pytest.mark.parametrize("spare", [False, True], ids=["no-spare-node", "a-node-joins"])
def test_a_node_killed_mid_run_loses_nothing(tmp_path, spare):
    """SIGKILL of a worker node (its raylet and its workers) while every worker holds batches: the lost node's batches run on the
    workers left (no spare CPU: the run ends on what is left; a node that joined mid-run: the pool grew onto it
    and it takes its share), every matrix stored once, the run ok, exit 0, one console line about the node."""
    db = tmp_path / "c.duckdb"
    release = tmp_path / "release"
    hold = {"TPA_DIST_INJECT_HOLD": ".", "TPA_DIST_INJECT_HOLD_UNTIL": str(release)}  # every matrix, lm_head too
    with RayProcesses() as cluster:
        cluster.head(num_cpus=1).worker("w1").worker("w2")
        cluster.wait_for_nodes(3)
        console = Console(_submit(cluster, tmp_path, "synth:tiny-mixtral", hold, "--address", cluster.address))
        console.wait_for_cpu_workers(3)  # each worker now holds its first batches
        if spare:
            cluster.worker("w3")
            console.wait_for_cpu_workers(4)  # and takes queued batches at once
        cluster.kill_node("w1")
        release.touch()
        out = console.finish()
        names = _node_ids(cluster)
    assert console.proc.returncode == 0, out
    rows = _rows(db)
    assert len(rows) == 41 and all(n == 1 for n in Counter(r["matrix_key"] for r in rows).values())
    assert {r["status"] for r in rows} == {"ok"}
    assert _run_record(db) == ("ok", 0, 41, 41)
    ran_on = Counter(r["node"] for r in rows)
    assert ran_on[names["w1"]] == 0, (ran_on, out)  # its batches were in flight when it died: all ran elsewhere
    if spare:
        assert ran_on[names["w3"]] > 0, out  # the node that joined mid-run took work
    said = [line for line in out.splitlines() if LOG_LINE.match(line) and "lost mid-run" in line]
    assert len(said) == 1 and "1 worker(s)" in said[0], out  # one console line says a node was lost
    assert "[state-dump]" not in out and "(raylet)" not in out and "Traceback" not in out, out
    assert "joined the Ray cluster at" in out and "3 node(s), 3 CPU(s), 0 GPU(s)" in out


def test_auto_refuses_to_guess_among_clusters(monkeypatch):
    import ray._private.services as services

    from tpa_dist.errors import RayConnectError
    from tpa_dist.run.raystart import resolve_auto

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(services, "find_gcs_addresses", lambda: {"10.0.0.1:6379", "10.0.0.2:6379"})
    with pytest.raises(RayConnectError, match=r"2 Ray clusters run on this machine \(10.0.0.1:6379, 10.0.0.2:6379\)"):
        resolve_auto()
    monkeypatch.setattr(services, "find_gcs_addresses", lambda: set())
    with pytest.raises(RayConnectError, match="no Ray cluster runs on this machine"):
        resolve_auto()
    monkeypatch.setattr(services, "find_gcs_addresses", lambda: {"10.0.0.1:6379"})
    assert resolve_auto()[0] == "10.0.0.1:6379"


@pytest.mark.slow
def test_an_autoscaler_adds_a_gpu_node_during_a_submit(tmp_path):
    """A cluster whose CPU and GPU node types start at 0 (issue 35 B.4): submit asks Ray's autoscaler for workers,
    both nodes join while the run goes on, and each takes its share of the queued work — batches are handed out as
    workers come, not all to the head's worker before they join (fake GPUs: the GPU code path on the CPU)."""
    release = tmp_path / "release"
    gpu_type = {
        "gpu": {"resources": {"CPU": 1, "GPU": 1}, "node_config": {}, "min_workers": 0, "max_workers": 1},
        "cpu": {"resources": {"CPU": 1}, "node_config": {}, "min_workers": 0, "max_workers": 1},
    }
    db = tmp_path / "c.duckdb"
    with RayProcesses(token=False) as cluster:
        cluster.head(num_cpus=1, autoscaling_config=fake_autoscaling_config(gpu_type))
        cluster.wait_for_nodes(1)
        env = {
            "TPA_DIST_FAKE_GPU": "1",
            "TPA_DIST_INJECT_DELAY_S": "1",
            "TPA_DIST_INJECT_HOLD": "model.",  # every task waits until the GPU worker is ready
            "TPA_DIST_INJECT_HOLD_UNTIL": str(release),
        }
        console = Console(_submit(cluster, tmp_path, "synth:tiny-llama", env, "--address", cluster.address))
        console.wait_for("a new GPU worker is ready on", timeout=600)  # on the node the autoscaler launched
        console.wait_for("a new CPU worker is ready on", timeout=600)  # the CPU node (the GPU worker holds its CPU)
        release.touch()  # every worker holds queued batches now
        out = console.finish()
    proc = console.proc
    assert proc.returncode == 0, out
    assert "asked Ray's autoscaler for" in out and "and 1 GPU worker(s)" in out, out
    assert "a new GPU worker is ready on" in out, out
    rows = _rows(db)
    assert len(rows) == 21 and {r["status"] for r in rows} == {"ok"}
    assert {r["device"] for r in rows} == {"cpu", "fake-gpu"}, out  # both the head's CPU and the new GPU node
    assert len({r["node"] for r in rows}) == 3, out  # the head and both nodes that joined mid-run


def test_synth_presets_are_written_by_nodes_that_cannot_see_the_driver_files(ray_session, tmp_path, monkeypatch):
    from tpa_dist.jobs import Job
    from tpa_dist.run.driver import submit

    nodes = tmp_path / "nodes"
    monkeypatch.setenv("TPA_DIST_HIDE_PREFIX", os.environ["TPA_DIST_CACHE"])  # the driver's synth cache
    monkeypatch.setenv("TPA_DIST_NODE_CACHE", str(nodes))
    monkeypatch.setenv("TPA_DIST_EXECUTOR", "ray")
    job = Job.create(
        report=False,
        models=("synth:tiny-gpt2",),
        db=str(tmp_path / "s.duckdb"),
        output_dir=str(tmp_path / "out"),
        progress=False,
        embedding=False,
        seed=3,
    )
    summary = submit(job)
    assert summary.ok, summary.describe()
    written = list(nodes.glob("*/synth/tiny-gpt2-seed3/model.safetensors"))
    assert len(written) == 1  # one node, one copy, written by its workers
    reference = Path(os.environ["TPA_DIST_CACHE"]) / "synth" / "tiny-gpt2-seed3" / "model.safetensors"
    assert written[0].read_bytes() == reference.read_bytes()  # the same bytes: the same analysis
    rows = _rows(tmp_path / "s.duckdb")
    assert rows and {r["status"] for r in rows} == {"ok"}


def test_cluster_yaml_is_valid_as_ray_up_prepares_it():
    import yaml
    from ray.autoscaler._private.util import prepare_config, validate_config

    for name in ("cluster.yaml", "docs/cluster-onprem.yaml"):
        raw = yaml.safe_load((ROOT / name).read_text())
        prepared = prepare_config(raw)
        validate_config(prepared)
        assert "min_workers" not in raw, f"{name}: a top-level min_workers is dropped by Ray"
        exclude = set(prepared["rsync_exclude"])
        assert {"**/.venv", "**/data", "**/__pycache__"} <= exclude, name
        setup = " ".join(prepared["setup_commands"])
        assert "[cluster]" in setup, name  # ray[default], for `ray job submit`
        types = prepared["available_node_types"]
        assert prepared["max_workers"] >= sum(
            t.get("max_workers", 0) for n, t in types.items() if n != prepared["head_node_type"]
        ), name
    gpu = yaml.safe_load((ROOT / "cluster.yaml").read_text())["available_node_types"]["gpu_worker"]
    assert gpu["min_workers"] == 0 and gpu["max_workers"] >= 1 and gpu["resources"].get("GPU", 0) >= 1

"""A real multi-raylet Ray cluster for tests: `ray start` processes (a head, worker nodes joining it), in a temp dir
of their own, with Ray's token authentication as a user's cluster has it; nodes die by SIGKILL of their processes,
found by PID — never `ray stop`, which would stop every Ray on the machine."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RayProcesses:
    """Head + worker nodes as separate `ray start` processes; `env` is what a client of the cluster needs."""

    def __init__(self, token: bool = True) -> None:
        # Ray's unix sockets live under the temp dir: keep its path short (the limit is ~107 bytes)
        self.temp_dir = Path(tempfile.mkdtemp(prefix="tpa-ray-", dir="/tmp"))
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.token = secrets.token_hex(32) if token else None
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        if self.token:
            self.env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=self.token)
        else:
            self.env["RAY_AUTH_MODE"] = "disabled"
        self.nodes: list[str] = []

    def _start(self, args: list[str], extra_env: dict[str, str] | None = None) -> None:
        env = dict(self.env, **(extra_env or {}))
        proc = subprocess.run([RAY, "start", *args], env=env, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"ray start {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")

    def head(self, num_cpus: int = 1, autoscaling_config: dict | None = None) -> RayProcesses:
        args = [
            "--head",
            f"--port={self.port}",
            f"--temp-dir={self.temp_dir}",
            f"--num-cpus={num_cpus}",
            "--num-gpus=0",
            "--include-dashboard=false",
            "--disable-usage-stats",
            "--node-name=head",
        ]
        extra = None
        if autoscaling_config is not None:  # Ray's fake multi-node provider: nodes it launches are local processes
            path = self.temp_dir / "autoscaling.json"
            config = dict(autoscaling_config)
            config["provider"] = dict(config["provider"], gcs_address=f"{_node_ip()}:{self.port}")
            path.write_text(json.dumps(config))
            args.append(f"--autoscaling-config={path}")
            extra = {"RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1"}
        self._start(args, extra)
        self.nodes.append("head")
        return self

    def worker(self, name: str, num_cpus: int = 1) -> RayProcesses:
        self._start(
            [
                f"--address={self.address}",
                f"--num-cpus={num_cpus}",
                "--num-gpus=0",
                "--disable-usage-stats",
                f"--node-name={name}",
            ]
        )
        self.nodes.append(name)
        return self

    def wait_for_nodes(self, count: int, timeout: float = 120) -> None:
        """Until the cluster shows `count` live nodes (asked through the `ray` CLI, as a user would)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.alive_nodes() >= count:
                return
            time.sleep(0.5)
        raise TimeoutError(f"the cluster did not reach {count} nodes")

    def alive_nodes(self) -> int:
        code = "import ray,sys; ray.init(address=sys.argv[1], logging_level='ERROR', log_to_driver=False); "
        code += "print(sum(1 for n in ray.nodes() if n['Alive']))"
        proc = subprocess.run(
            [sys.executable, "-c", code, self.address], env=self.env, capture_output=True, text=True, timeout=120
        )
        lines = proc.stdout.strip().splitlines()
        return int(lines[-1]) if proc.returncode == 0 and lines and lines[-1].isdigit() else 0

    def pids(self, pattern: str = "") -> list[int]:
        """Processes of this cluster (their command line names its temp dir), those matching `pattern` only."""
        out = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(self.temp_dir) in cmd and pattern in cmd:
                out.append(int(entry.name))
        return out

    def raylet_pid(self, node: str) -> int:
        (pid,) = [p for p in self.pids("/raylet/raylet") if f"--node-name={node}" in _cmdline(p)]
        return pid

    def kill_node(self, node: str) -> list[int]:
        """SIGKILL a node's raylet and the worker processes it started, as a machine that vanishes: nothing is
        told, nothing cleans up. (Ray renames its workers' command lines: they are found as the raylet's children.)"""
        raylet = self.raylet_pid(node)
        victims = [raylet] + _descendants(raylet)
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return victims

    def shutdown(self) -> None:
        for _ in range(3):  # processes that spawn others while we kill: a few passes
            for pid in self.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> RayProcesses:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def _node_ip() -> str:
    import ray._private.services as services

    return services.get_node_ip_address()


def fake_autoscaling_config(worker_types: dict, head_cpus: int = 1, max_workers: int = 4) -> dict:
    """An autoscaling cluster config for Ray's fake multi-node provider (as `ray.cluster_utils.AutoscalingCluster`
    writes it, whose own start runs `ray stop`)."""
    return {
        "cluster_name": "tpa-fake",
        "max_workers": max_workers,
        "provider": {
            "type": "fake_multinode",
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
        },
        "available_node_types": {
            "ray.head.default": {"resources": {"CPU": head_cpus}, "node_config": {}, "max_workers": 0},
            **worker_types,
        },
        "head_node_type": "ray.head.default",
        "auth": {},
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": 1,
        "docker": {},
        "initialization_commands": [],
        "setup_commands": [],
        "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
        "file_mounts": {},
        "cluster_synced_files": [],
        "file_mounts_sync_continuously": False,
        "rsync_exclude": [],
        "rsync_filter": [],
    }

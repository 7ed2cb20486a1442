"""Ray workers: each actor analyzes batches of tasks, reading its tensors itself from the byte ranges.

CPU workers compute with numpy/LAPACK; GPU workers with torch on CUDA (decoding bf16/fp16 on the card).
Fault-injection settings (documented in the README, used by the tests) are read from the environment:
TPA_DIST_FAKE_GPU=1 runs the GPU code path on the CPU when CUDA is absent; TPA_DIST_INJECT_OOM_BYTES=N
makes the GPU path raise CUDA OOM above N bytes; TPA_DIST_INJECT_KILL=substring SIGKILLs the worker when it
starts a matching matrix (once, recorded in TPA_DIST_INJECT_KILL_MARKER); TPA_DIST_INJECT_DELAY_S slows
every task; TPA_DIST_INJECT_HOLD=substring holds matching matrices until the file TPA_DIST_INJECT_HOLD_UNTIL exists.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from .analysis import analyze_delta, analyze_task, failed_row
from .rows import MatrixRow
from .settings import AnalysisSettings
from .tasks import DeltaTask, MatrixTask, relocate, task_paths

INJECT_PREFIX = "TPA_DIST_"


def gpu_compute_device() -> tuple[str, str, int]:
    """(compute device, label, free bytes) for a GPU worker; ("", "unavailable", 0) without CUDA."""
    import torch

    if torch.cuda.is_available():
        free, _total = torch.cuda.mem_get_info()
        return "cuda", f"cuda:{torch.cuda.get_device_name()}", int(free)
    if os.environ.get("TPA_DIST_FAKE_GPU") == "1":
        return "torch-cpu", "fake-gpu", int(float(os.environ.get("TPA_DIST_FAKE_GPU_MEMORY", 16 * 2**30)))
    return "", "unavailable", 0


class AnalysisWorker:
    """One analysis process with a fixed BLAS thread count (run as a Ray actor)."""

    def __init__(self, settings: AnalysisSettings, gpu: bool = False) -> None:
        from threadpoolctl import threadpool_limits

        self._limits = threadpool_limits(limits=settings.threads)
        if gpu or "torch" in sys.modules:  # CPU workers never need torch (2 s to import)
            import torch

            torch.set_num_threads(settings.threads)
        self.settings = settings
        if gpu:
            self.compute, self.device, self.free_bytes = gpu_compute_device()
            if self.compute == "cuda":
                # torch loads its CUDA linear-algebra library on the first linalg call, and that lazy load is not
                # thread-safe (concurrent streams' first eigvalsh: "lazy wrapper should be called at most once")
                torch.linalg.eigvalsh(torch.eye(2, dtype=torch.float64, device="cuda"))
        else:
            self.compute, self.device, self.free_bytes = "cpu", "cpu", 0
        self.host = socket.gethostname()
        self.node = self.host
        try:
            import ray

            if ray.is_initialized():  # get_runtime_context() alone would start a Ray instance
                self.node = ray.get_runtime_context().get_node_id()
        except ImportError:  # in-process use (benchmarks) on a machine without Ray
            pass
        self.worker = f"{self.host}:{os.getpid()}"
        self._fetched: dict[tuple, str] = {}
        self._thread = threading.local()  # a GPU actor's concurrent calls: one CUDA stream per calling thread

    def describe(self) -> dict[str, object]:
        return {
            "node": self.node,
            "host": self.host,
            "worker": self.worker,
            "device": self.device,
            "free_bytes": self.free_bytes,
        }

    def _inject(self, task: MatrixTask) -> None:
        delay = os.environ.get("TPA_DIST_INJECT_DELAY_S")
        if delay:
            time.sleep(float(delay))
        hold = os.environ.get("TPA_DIST_INJECT_HOLD")
        until = os.environ.get("TPA_DIST_INJECT_HOLD_UNTIL")
        if hold and until and hold in task.matrix_key:
            while not os.path.exists(until):  # fault injection only: a test releases it by creating the file
                time.sleep(0.05)
        target = os.environ.get("TPA_DIST_INJECT_KILL")
        marker = os.environ.get("TPA_DIST_INJECT_KILL_MARKER")
        if target and marker and target in task.matrix_key and not Path(marker).exists():
            Path(marker).write_text(f"{self.worker} {task.matrix_key}\n")
            os.kill(os.getpid(), signal.SIGKILL)

    def _visible(self, path: str) -> bool:
        hidden = os.environ.get("TPA_DIST_HIDE_PREFIX")  # tests: act as a node that cannot see these paths
        return os.path.exists(path) and not (hidden and path.startswith(hidden))

    def _localize(self, task: MatrixTask) -> MatrixTask:
        """Every file of a task that this node cannot see is made local: a Hub model's files (its shard, and those
        of an FP8 scale or GPTQ/AWQ companions) fetched, that file alone, into the node's own cache; a synthetic
        preset written there whole (it is deterministic in its seed)."""
        if task.hub is None and task.synth is None:
            return task
        missing = sorted(p for p in task_paths(task) if not self._visible(p))
        if not missing:
            return task
        root = task.region.path[: -len(task.shard)]  # every path of a task is <folder>/<file in the repo>
        cache = os.environ.get("TPA_DIST_NODE_CACHE")
        node_cache = os.path.join(cache, self.node) if cache else None
        if task.synth is not None:
            folder = self._synth_folder(task.synth, node_cache)
            return relocate(task, {p: os.path.join(folder, p[len(root) :]) for p in missing})
        from huggingface_hub import hf_hub_download

        moved = {}
        for path in missing:
            key = (task.hub, path)
            if key not in self._fetched:
                self._fetched[key] = hf_hub_download(
                    task.hub[0],
                    path[len(root) :],
                    revision=task.hub[1],
                    endpoint=os.environ.get("HF_ENDPOINT") or None,
                    cache_dir=node_cache,
                    user_agent={"tpa-node": self.node},
                )
            moved[path] = self._fetched[key]
        return relocate(task, moved)

    def _synth_folder(self, synth: tuple[str, int], node_cache: str | None) -> str:
        """The node's own copy of a synthetic preset, written once per node (a file lock keeps the workers of one
        node from writing it twice at once)."""
        import fcntl

        from .sources import cache_dir
        from .synth_derived import write_any

        if synth not in self._fetched:
            preset, seed = synth
            folder = Path(node_cache) if node_cache else cache_dir()
            folder = folder / "synth" / f"{preset}-seed{seed}"
            folder.parent.mkdir(parents=True, exist_ok=True)
            with open(folder.parent / f".{folder.name}.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                self._fetched[synth] = str(write_any(preset, folder, seed=seed))
        return self._fetched[synth]

    def analyze(self, tasks: list[MatrixTask]) -> list[tuple[MatrixRow, np.ndarray | None]]:
        """One (row, singular values) per task; anything a task raises (fetching its shard included) becomes
        that task's error row, so one bad tensor never costs the rest of its batch.

        A GPU actor takes several calls at once (Ray's max_concurrency, --gpu-streams), each thread on its own
        CUDA stream: one batch's file reading and copying overlap another's kernels in one process and one CUDA
        context (BENCHMARKS.md: 4 streams 2.1x one on an H100; 4 processes sharing the card time-slice instead)."""
        if self.compute != "cuda":
            return self._analyze(tasks)
        import torch

        stream = getattr(self._thread, "stream", None)
        if stream is None:
            stream = self._thread.stream = torch.cuda.Stream()
        with torch.cuda.stream(stream):
            return self._analyze(tasks)

    def _analyze(self, tasks: list[MatrixTask]) -> list[tuple[MatrixRow, np.ndarray | None]]:
        out = []
        for task in tasks:
            delta = isinstance(task, DeltaTask)
            self._inject(task.tuned if delta else task)
            try:
                if delta:
                    local = replace(task, tuned=self._localize(task.tuned), base=self._localize(task.base))
                else:
                    local = self._localize(task)
            except Exception as exc:  # noqa: BLE001 - a shard this node cannot fetch fails its tasks only
                out.append((failed_row(task, f"cannot fetch {task.shard}: {exc}"), None))
                continue
            if delta:
                out.append(analyze_delta(local, self.settings, device=self.compute))
            else:
                out.append(analyze_task(local, self.settings, device=self.compute))
        for row, _ in out:
            row.update(node=self.node, worker=self.worker, device=self.device)
        return out

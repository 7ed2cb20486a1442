"""Ray workers: each actor analyzes batches of tasks, reading its tensors itself from the byte ranges."""

from __future__ import annotations

import os
import socket

import numpy as np

from .analysis import analyze_task
from .tasks import MatrixTask


class AnalysisWorker:
    """One analysis process with a fixed BLAS thread count (run as a Ray actor)."""

    def __init__(self, settings_id: str, sparsity_threshold: float, block_bytes: int, threads: int,
                 device: str = "cpu") -> None:
        from threadpoolctl import threadpool_limits

        self._limits = threadpool_limits(limits=threads)
        try:
            import torch

            torch.set_num_threads(threads)
        except ImportError:  # pragma: no cover - torch is a dependency
            pass
        self.settings_id = settings_id
        self.sparsity_threshold = sparsity_threshold
        self.block_bytes = block_bytes
        self.device = device
        self.host = socket.gethostname()
        try:
            import ray

            self.node = ray.get_runtime_context().get_node_id()
        except Exception:  # noqa: BLE001 - outside Ray
            self.node = self.host
        self.worker = f"{self.host}:{os.getpid()}"

    def describe(self) -> dict[str, str]:
        return {"node": self.node, "host": self.host, "worker": self.worker, "device": self.device}

    def analyze(self, tasks: list[MatrixTask]) -> list[tuple[dict, np.ndarray | None]]:
        out = []
        for task in tasks:
            row, sv = analyze_task(task, self.settings_id, self.sparsity_threshold,
                                   block_bytes=self.block_bytes, device=self.device)
            row["node"] = self.node
            row["worker"] = self.worker
            out.append((row, sv))
        return out

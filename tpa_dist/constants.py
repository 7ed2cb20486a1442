"""Every environment variable tpa-dist reads, in one place (as huggingface_hub's ``constants.py``): its name, its
meaning, how it is parsed, and the one-line error a bad value gets. No other module reads ``os.environ`` for these.

Values are read when asked for (a submit reads them once, at its start, and hands them on), so a test or a
notebook that changes the environment between two submits is seen by the second. docs/environment.md lists them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from tpa_dist.errors import JobError

#: variables the driver passes on to its workers (never tokens: a node that fetches uses its own HF_TOKEN)
WORKER_VARIABLES = ("TPA_DIST_CACHE", "TPA_DIST_NODE_CACHE", "HF_ENDPOINT")

_TRUE = ("1", "true", "yes", "on")


def _text(name: str, env: Mapping[str, str] | None = None) -> str | None:
    value = (os.environ if env is None else env).get(name, "").strip()
    return value or None


def number(name: str, default: float, env: Mapping[str, str] | None = None) -> float:
    """A numeric variable; a value that is not a finite number is one JobError naming the variable."""
    value = _text(name, env)
    if value is None:
        return default
    try:
        out = float(value)
    except ValueError:
        raise JobError(f"{name}={value!r} is not a number") from None
    if out != out or out in (float("inf"), float("-inf")) or out < 0:
        raise JobError(f"{name}={value!r} must be a finite number ≥ 0")
    return out


def text(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """A text variable, None when unset or blank."""
    return _text(name, env)


def executor() -> str | None:
    """TPA_DIST_EXECUTOR: 'ray' or 'local' forces the engine (None: chosen by the job's size and machine)."""
    value = (_text("TPA_DIST_EXECUTOR") or "").lower()
    return value if value in ("ray", "local") else None


def first_worker_wait_s() -> float:
    """TPA_DIST_FIRST_WORKER_WAIT_S: how long a Ray submit waits at most for its first workers (and every GPU worker)
    to answer before it plans the work (default 60; planning routes matrices by the GPU workers' memory)."""
    return number("TPA_DIST_FIRST_WORKER_WAIT_S", 60.0)


def cache_root() -> Path:
    """TPA_DIST_CACHE: where synthetic checkpoints are written (default ~/.cache/tpa-dist)."""
    return Path(_text("TPA_DIST_CACHE") or Path.home() / ".cache" / "tpa-dist")


def node_cache() -> str | None:
    """TPA_DIST_NODE_CACHE: on a cluster, the root of per-node caches (`<root>/<node id>`)."""
    return _text("TPA_DIST_NODE_CACHE")


def hf_endpoint() -> str | None:
    """HF_ENDPOINT: a Hub mirror (the tests' emulator)."""
    return _text("HF_ENDPOINT")


def hub_offline() -> bool:
    """HF_HUB_OFFLINE: never reach the Hub."""
    return (_text("HF_HUB_OFFLINE") or "").lower() in _TRUE


def hub_cache() -> str | None:
    """HF_HUB_CACHE, else HF_HOME/hub: where Hub downloads go (None: huggingface_hub's default)."""
    cache = _text("HF_HUB_CACHE")
    if cache:
        return cache
    home = _text("HF_HOME")
    return str(Path(home) / "hub") if home else None


def ray_address() -> str | None:
    """RAY_ADDRESS: the cluster a submit joins without --address (as Ray reads it)."""
    return _text("RAY_ADDRESS")


def worker_env() -> dict[str, str]:
    """The variables of WORKER_VARIABLES that are set, for the workers' runtime environment."""
    return {k: v for k in WORKER_VARIABLES if (v := os.environ.get(k))}

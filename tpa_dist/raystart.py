"""Start or join Ray the way Ray's own tools do: an explicit address (``--address``, the job file, or
``RAY_ADDRESS``) joins that cluster; otherwise a fresh local Ray, whatever clusters the machine has recorded.

Ray's own warnings (token authentication, actor retries) are hidden unless the log level is DEBUG (``-v``).
"""

from __future__ import annotations

import logging
import os
import time

from .errors import RayConnectError

log = logging.getLogger("tpa_dist")

PROBE_TIMEOUT_S = 10.0


def ray_target(address: str | None) -> tuple[str | None, str]:
    """(address to join or None for a fresh local Ray, where it came from: '--address' or 'RAY_ADDRESS')."""
    if address:
        return address, "--address"
    env = os.environ.get("RAY_ADDRESS", "").strip()
    if env:
        return env, "RAY_ADDRESS"
    return None, "local"


def _probe(address: str) -> None:
    """Fail fast on a host:port nobody listens on (Ray itself retries such an address for minutes)."""
    import socket

    if "://" in address or address == "auto" or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"not HOST:PORT: {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT_S).close()
    except OSError as exc:
        raise ConnectionError(f"nothing answers at {address} ({exc.strerror or exc})") from None


def start_ray(address: str | None, num_cpus: int | None = None) -> float:
    """Initialise Ray in this process unless it already is; seconds it took. An address that cannot be reached
    raises RayConnectError naming where the address came from."""
    import ray

    if ray.is_initialized():
        return 0.0
    verbose = log.getEffectiveLevel() <= logging.DEBUG
    quiet = dict(logging_level=logging.INFO if verbose else logging.ERROR, log_to_driver=verbose)
    target, origin = ray_target(address)
    t0 = time.perf_counter()
    if target is None:
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False, **quiet)
        return time.perf_counter() - t0
    try:
        _probe(target)
        ray.init(address=target, **quiet)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = "unset RAY_ADDRESS to run on a local Ray" if origin == "RAY_ADDRESS" else "check the address"
        raise RayConnectError(
            f"cannot connect to the Ray cluster at {target!r} (from {origin}): {first} — is the cluster running "
            f"(`ray status`)? Or {hint}"
        ) from None
    return time.perf_counter() - t0

"""Start or join Ray the way Ray's own tools do, and say which: an explicit address (``--address``, the job file,
or ``RAY_ADDRESS``) joins that cluster; ``auto`` joins the one cluster this machine runs (``RAY_ADDRESS`` first, as
Ray reads it) and refuses to guess among several; otherwise a fresh local Ray, whatever clusters the machine has.

Joining never hangs: an address nobody answers at, a cluster that wants an authentication token, or several
clusters for ``auto`` is one RayConnectError naming where the address came from and what to do, within a minute.
Ray's own console output — the messages Ray pushes to every driver (a raylet's death with its ``[state-dump]``,
task retries) and its C++ connection warnings — is kept out of the console unless the log level is DEBUG (``-v``).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tpa_dist import constants
from tpa_dist.errors import RayConnectError

log = logging.getLogger("tpa_dist")

PROBE_TIMEOUT_S = 10.0
JOIN_TIMEOUT_S = 30.0


def ray_target(address: str | None) -> tuple[str | None, str]:
    """(address to join or None for a fresh local Ray, where it came from: '--address' or 'RAY_ADDRESS')."""
    if address:
        return address, "--address"
    env = constants.ray_address() or ""
    if env:
        return env, "RAY_ADDRESS"
    return None, "local"


def resolve_auto() -> tuple[str, str]:
    """The cluster `--address auto` means: RAY_ADDRESS if set, else the one Ray cluster running on this machine."""
    env = constants.ray_address() or ""
    if env and env != "auto":
        return env, "RAY_ADDRESS, read by --address auto"
    from ray._private.services import find_gcs_addresses

    running = sorted(find_gcs_addresses())
    if not running:
        raise RayConnectError(
            "--address auto: no Ray cluster runs on this machine; start one (`ray start --head`) or give "
            "--address HEAD:PORT"
        )
    if len(running) > 1:
        raise RayConnectError(
            f"--address auto: {len(running)} Ray clusters run on this machine ({', '.join(running)}); "
            "give --address one of them"
        )
    return running[0], "--address auto: the Ray cluster running on this machine"


#: the client's opening of an HTTP/2 connection and an empty SETTINGS frame: a GCS (gRPC) answers with SETTINGS
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
JOB_SERVER_HINT = (
    "--address takes the Ray cluster's GCS address HOST:PORT (port 6379 unless the head was started with "
    "another --port); the http:// job-server address (port 8265) is for `ray job submit --address`, which sets "
    "RAY_ADDRESS for the job itself"
)


def _probe(address: str) -> None:
    """Fail fast on an address that cannot be a GCS: an http:// URL, a host:port nobody listens on (Ray itself
    retries such an address for minutes), or one where something else answers — the job server, a web page (Ray
    would wait on it for ever). A GCS speaks gRPC: it answers HTTP/2's opening with a SETTINGS frame."""
    import socket

    if address.startswith(("http://", "https://")):
        raise AddressError(f"{address} is an http address. {JOB_SERVER_HINT}")
    if "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"not HOST:PORT: {address!r}")
    try:
        conn = socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT_S)
    except OSError as exc:
        raise ConnectionError(f"nothing answers at {address} ({exc.strerror or exc})") from None
    try:
        conn.settimeout(PROBE_TIMEOUT_S)
        conn.sendall(_H2_PREFACE)
        reply = conn.recv(16)
    except OSError:
        reply = b""
    finally:
        conn.close()
    if len(reply) >= 4 and reply[3] == 4:  # an HTTP/2 SETTINGS frame: a gRPC server, as a GCS is
        return
    if reply.startswith(b"HTTP/"):
        raise AddressError(
            f"an HTTP server answers at {address}, not a Ray GCS (the job server or dashboard?). {JOB_SERVER_HINT}"
        )
    raise AddressError(f"something answers at {address}, but not as a Ray cluster's GCS. {JOB_SERVER_HINT}")


def _authenticate(address: str) -> None:
    """Ray's own GCS client, before ray.init: a cluster that rejects this machine's token, or wants one it was not
    given, raises AuthenticationError at once — ray.init retries for ~20 s before it says so."""
    if "://" in address:  # a Ray Client address (ray://): no GCS to ask
        return
    from ray._raylet import GcsClient

    GcsClient(address=address)


class AddressError(ValueError):
    """An address that is not a GCS's: its message is the whole error line."""


_console: list[int] = []  # the real stderr while Ray's connection chatter is diverted


@contextmanager
def _joining(target: str, origin: str) -> Iterator[None]:
    """ray.init on a cluster must answer within JOIN_TIMEOUT_S: otherwise one line and exit 2 (Ray itself may wait
    for minutes, or for ever, on an address that accepts connections but never completes the handshake)."""
    done = threading.Event()

    def watch() -> None:
        if done.wait(JOIN_TIMEOUT_S):
            return
        line = (
            f"error: cannot connect to the Ray cluster at {target!r} (from {origin}): no answer within "
            f"{JOIN_TIMEOUT_S:.0f} s — is it a Ray head's GCS address (HOST:6379)? `ray status` on the head says\n"
        )
        os.write(_console[0] if _console else 2, line.encode())
        os._exit(2)

    threading.Thread(target=watch, name="tpa-join-watch", daemon=True).start()
    try:
        yield
    finally:
        done.set()


@contextmanager
def _stderr_captured(enabled: bool) -> Iterator[list[str]]:
    """Divert file descriptor 2 (Ray's C++ warnings, one per retry) while Ray connects; the text is handed back."""
    out: list[str] = []
    if not enabled:
        yield out
        return
    sys.stderr.flush()
    saved = os.dup(2)
    _console[:] = [saved]
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield out
        finally:
            _console.clear()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read().decode(errors="replace"))


def _quiet_ray_messages() -> None:
    """Route the messages Ray pushes to every driver (raylet deaths, retries) to the DEBUG log, not the console.
    (Ray prints them from a thread of its own through `print_to_stdstream`, whatever `log_to_driver` says.)"""
    try:
        import ray._private.worker as ray_worker
    except ImportError:  # pragma: no cover - Ray's layout changed: its messages stay as they are
        return
    original = getattr(ray_worker, "print_to_stdstream", None)
    if original is None or getattr(original, "tpa_quiet", False):
        return

    def quiet(data: dict, ignore_prefix: bool) -> None:
        if data.get("pid") == "raylet":
            for line in data.get("lines", []):
                log.debug("ray: %s", line)
            return
        original(data, ignore_prefix)

    quiet.tpa_quiet = True  # type: ignore[attr-defined]
    ray_worker.print_to_stdstream = quiet


def _auth_problem(exc: BaseException, captured: str) -> bool:
    texts = [captured]
    while exc is not None:
        texts.append(f"{type(exc).__name__}: {exc}")
        exc = exc.__cause__ or exc.__context__
    text = "\n".join(texts)
    return any(word in text for word in ("InvalidAuthToken", "Unauthenticated", "AuthenticationError"))


def start_ray(address: str | None, num_cpus: int | None = None) -> float:
    """Initialise Ray in this process unless it already is; seconds it took. A cluster that cannot be joined
    raises RayConnectError naming where the address came from."""
    import ray

    if ray.is_initialized():
        return 0.0
    verbose = log.getEffectiveLevel() <= logging.DEBUG
    quiet = dict(logging_level=logging.INFO if verbose else logging.ERROR, log_to_driver=verbose)
    if not verbose:
        _quiet_ray_messages()
    target, origin = ray_target(address)
    t0 = time.perf_counter()
    if target is None:
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False, **quiet)
        return time.perf_counter() - t0
    if target == "auto":
        target, origin = resolve_auto()
        _token_if_available()
    with _stderr_captured(not verbose) as captured:
        try:
            _probe(target)
            with _joining(target, origin):
                _authenticate(target)
                ray.init(address=target, **quiet)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError, ray.exceptions.RayError) as exc:
            failure = exc
        else:
            failure = None
    if failure is not None:
        raise _connect_error(target, origin, failure, "".join(captured)) from None
    _describe_cluster(target, origin)
    return time.perf_counter() - t0


def _token_if_available() -> None:
    """As `ray.init("auto")` does: with RAY_AUTH_MODE unset, a token on this machine turns token auth on."""
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # pragma: no cover - a Ray without token authentication
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def _connect_error(target: str, origin: str, exc: BaseException, captured: str) -> RayConnectError:
    if isinstance(exc, AddressError):
        return RayConnectError(f"cannot use --address {target!r} (from {origin}): {exc}")
    if _auth_problem(exc, captured) and constants.text("RAY_AUTH_MODE") == "token":
        return RayConnectError(
            f"the Ray cluster at {target!r} (from {origin}) rejected this machine's authentication token "
            "(RAY_AUTH_TOKEN, or the file ~/.ray/auth_token): give it the cluster's own token "
            "(`ray get-auth-token` on the head node prints it)"
        )
    if _auth_problem(exc, captured):
        return RayConnectError(
            f"the Ray cluster at {target!r} (from {origin}) requires token authentication: set RAY_AUTH_MODE=token "
            "and give this machine the cluster's token — RAY_AUTH_TOKEN=<token>, or the file ~/.ray/auth_token "
            "(`ray get-auth-token` on the head node prints it)"
        )
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    hint = "unset RAY_ADDRESS to run on a local Ray" if "RAY_ADDRESS" in origin else "check the address"
    return RayConnectError(
        f"cannot connect to the Ray cluster at {target!r} (from {origin}): {first} — is the cluster running "
        f"(`ray status`)? Or {hint}"
    )


def _describe_cluster(target: str, origin: str) -> None:
    """One line saying which cluster this run joined, and what it has now."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    total = ray.cluster_resources()
    log.info(
        "joined the Ray cluster at %s (%s): %d node(s), %g CPU(s), %g GPU(s)",
        target,
        origin,
        len(nodes),
        total.get("CPU", 0),
        total.get("GPU", 0),
    )

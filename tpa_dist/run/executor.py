"""The one contract every engine implements — the local pool of forked processes (local.py) and the Ray pool of
actors (workerpool.py) — in the manner of Ray Data's executor interface: workers that take batches, and events
that say how each batch ended. What to do about each event (retry, split, blame, wait for workers) is decided once,
beside it, by the scheduler (scheduler.py) with the policy of batches.py; an engine never decides it.

An engine knows one thing the policy needs and cannot guess: whether a lost batch's *node* is gone (not the
batch's fault) or only its worker process died (the batch, or one it shared the process with, may have killed it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from tpa_dist.settings import WorkerSettings


@dataclass
class Worker:
    """One worker of an engine and what the scheduler knows of it."""

    actor: Any  # the engine's handle: a Ray actor, or the local pool's process
    pool: str  # 'cpu' | 'gpu'
    wid: int
    state: str = "starting"  # starting | ready | gone
    node: str = ""  # node id (Ray's, or the host name on the local pool)
    host: str = ""
    device: str = ""
    free_bytes: int = 0  # GPU: device memory one of its concurrent batches may plan with
    load: int = 0  # batches in flight
    alone: bool = False  # runs a suspect batch, and nothing else beside it
    created: float = field(default_factory=time.monotonic)

    @property
    def key(self) -> tuple[str, int]:
        return (self.pool, self.wid)


@dataclass(frozen=True)
class Done:
    """A batch came back: one result per task (a (row, spectrum) pair, or an embedding's result)."""

    handle: Any
    results: list


@dataclass(frozen=True)
class Lost:
    """A batch's worker process died under it. `node_lost`: the engine saw its node go (a machine lost, not the
    batch's fault); otherwise only the process died, on a node that is up. `ran`: False when the engine knows the
    batch was still waiting in the process's queue (it cannot have killed it)."""

    handle: Any
    node_lost: bool
    cause: str
    ran: bool = True


@dataclass(frozen=True)
class Raised:
    """A batch raised outside its tasks' own guards (the worker lives on)."""

    handle: Any
    error: str


Event = Done | Lost | Raised


class Executor(Protocol):
    """Workers that run batches. `start` begins creating workers and never waits for all of them: a worker is
    used from the moment it is ready. `poll` returns the batches that ended (and updates the workers' states)."""

    conf: WorkerSettings
    workers: list[Worker]

    def start(self) -> None: ...

    def ready(self, pool: str | None = None) -> list[Worker]: ...

    def alive(self, pool: str | None = None) -> bool: ...

    @property
    def gpu_free_bytes(self) -> int: ...

    def send(self, worker: Worker, tasks: list) -> Any:
        """Start `tasks` on `worker`; the handle names the batch in the events."""
        ...

    def poll(self, timeout: float) -> list[Event]:
        """Events of the batches that ended, waiting at most `timeout` seconds for one."""
        ...

    def maintain(self, wants_cpu: int, wants_gpu: int) -> None:
        """Grow into free resources for batches no live worker can take now; report lost nodes."""
        ...

    def cancel(self) -> None:
        """Stop the batches in flight (Ctrl-C)."""
        ...

    def shutdown(self) -> None: ...


def count_live(workers: list[Worker], pool: str | None = None) -> int:
    return sum(1 for w in workers if w.state != "gone" and (pool is None or w.pool == pool))

"""Typed batches and the one policy every executor (the Ray scheduler, the local pool) applies to them: what to do
when a batch's worker is lost, when a batch raises outside its tasks' own guards, and the rows of tasks that
cannot run."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from tpa_dist.compute.analysis import failed_row
from tpa_dist.compute.tasks import DeltaTask, MatrixTask

#: a batch that took its worker down this many times (on a node that stayed up) fails: it is what kills workers
MAX_FAILURES = 3
#: a batch whose worker's node was lost this many times fails too (a cluster losing nodes faster than it works)
MAX_LOSSES = 10

Task = MatrixTask | DeltaTask


@dataclass
class Batch:
    """Tasks that run together on one worker. `pool` is where the planner meant it to run ('cpu' or 'gpu');
    `fallback_reason` is recorded with its rows ('gpu_memory', 'cuda_oom')."""

    tasks: list[Task]
    pool: str = "cpu"
    fallback_reason: str | None = None
    failures: int = 0  # its worker died under it, on a live node
    losses: int = 0  # its worker's node was lost (not its fault)
    paths: frozenset[str] = field(default=frozenset(), compare=False)  # files it reads (download gating)

    @property
    def shard(self) -> str:
        """The file its first task reads: shard locality is decided by it."""
        return self.tasks[0].region.path

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tasks)


def after_loss(batch: Batch, blamed: bool) -> Batch:
    """The batch to queue again after its worker was lost. `blamed`: the worker died on a node that stayed up
    (the batch may be what killed it); otherwise its node was lost, which is not the batch's fault."""
    return replace(batch, failures=batch.failures + blamed, losses=batch.losses + (not blamed))


def exhausted(batch: Batch) -> str | None:
    """Why a batch must not run again (its tasks become error rows), or None while it may."""
    if batch.failures >= MAX_FAILURES:
        return f"worker lost {MAX_FAILURES} times while running it"
    if batch.losses >= MAX_LOSSES:
        return f"its worker's node was lost {MAX_LOSSES} times"
    return None


def split(batch: Batch) -> list[Batch]:
    """A batch that raised outside its tasks' own guards is re-run task by task, to isolate the one that raises."""
    return [replace(batch, tasks=[t]) for t in batch.tasks]


def failed_rows(batch: Batch | list[Task], message: str) -> list[tuple[object, None]]:
    """(row, no spectrum) of every task of a batch that cannot run: status 'error' and the message."""
    tasks = batch.tasks if isinstance(batch, Batch) else batch
    return [(failed_row(t, message), None) for t in tasks]

"""Typed batches and the one policy every engine's work is run by (the scheduler applies it to the events of the
local pool and of the Ray pool alike): what to do when a batch's worker process dies, when its node is lost, when
it raises outside its tasks' own guards, and the rows of tasks that cannot run.

Blame only what ran. A worker process that dies may have held several batches (a Ray actor takes the next one
while it runs one); the engine cannot say which killed it. So a death blames nobody at first: every batch that was
in the dead process becomes a *suspect* — split into single tasks, each run again alone in a worker that takes
nothing else beside it. A suspect that kills its worker while running alone is certainly the cause: that is a
strike, and MAX_FAILURES strikes fail exactly that task. A node that is lost costs its batches a loss, never a
strike (MAX_LOSSES of those fail a batch: a cluster losing nodes faster than it works).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

from tpa_dist.compute.analysis import failed_row
from tpa_dist.compute.tasks import EmbeddingTask, Task, task_path

#: a task that killed its worker process this many times, each time running alone, fails
MAX_FAILURES = 3
#: a batch whose worker's node was lost this many times fails too
MAX_LOSSES = 10


@dataclass
class Batch:
    """Tasks that run together on one worker. `pool` is where the planner meant it to run ('cpu' or 'gpu');
    `fallback_reason` is recorded with its rows ('gpu_memory', 'cuda_oom'); `suspect`: it was in a worker process
    that died, so it runs alone (one task, nothing beside it in its worker)."""

    tasks: list[Task]
    pool: str = "cpu"
    fallback_reason: str | None = None
    failures: int = 0  # it killed its worker while running alone
    losses: int = 0  # its worker's node was lost (not its fault)
    suspect: bool = False
    paths: frozenset[str] = field(default=frozenset(), compare=False)  # files it reads (download gating)

    @cached_property
    def shard(self) -> str:
        """The file its first task reads: shard locality is decided by it."""
        return task_path(self.tasks[0])

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tasks)


def after_death(batch: Batch, node_lost: bool) -> list[Batch]:
    """The batches to queue again after `batch`'s worker was lost (see the module docstring)."""
    if node_lost:
        return [replace(batch, losses=batch.losses + 1)]
    if batch.suspect and len(batch.tasks) == 1:  # it ran alone: it killed its worker
        return [replace(batch, failures=batch.failures + 1)]
    return [replace(batch, tasks=[t], suspect=True) for t in batch.tasks]


def exhausted(batch: Batch) -> str | None:
    """Why a batch must not run again (its tasks fail), or None while it may."""
    if batch.failures >= MAX_FAILURES:
        return f"the worker process died while analyzing it, {MAX_FAILURES} times"
    if batch.losses >= MAX_LOSSES:
        return f"its worker's node was lost {MAX_LOSSES} times"
    return None


def split(batch: Batch) -> list[Batch]:
    """A batch that raised outside its tasks' own guards is re-run task by task, to isolate the one that raises."""
    return [replace(batch, tasks=[t]) for t in batch.tasks]


@dataclass(frozen=True)
class EmbeddingFailure:
    """The result of an embedding task that could not run: which matrix, and why."""

    model_id: str
    revision: str
    param_name: str
    error: str


def failed_result(task: Task, message: str) -> object:
    """What a task that cannot run yields: an error row (matrix, ΔW) or an EmbeddingFailure."""
    if isinstance(task, EmbeddingTask):
        return EmbeddingFailure(task.model_id, task.revision, task.matrix_key, f"{task.matrix_key}: {message}")
    return (failed_row(task, message), None)


def failed_rows(batch: Batch | list[Task], message: str) -> list:
    """The results of every task of a batch that cannot run (see failed_result)."""
    tasks = batch.tasks if isinstance(batch, Batch) else batch
    return [failed_result(t, message) for t in tasks]

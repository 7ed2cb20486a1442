"""Draw a report's figures side by side: one forked process per core, each rendering whole figures with matplotlib.

A report's figures are independent and matplotlib is single-threaded, so with several cores the figures of one
report take about the time of the largest few instead of their sum (bench_small: ~1 s of a small model's 2 s
report). Children are forked at the first figure (matplotlib imported), take each figure's rows by pipe as soon as
its query returned and send back PNG bytes while the parent runs the next queries (`Drawing`); they never touch the
database, ignore Ctrl-C (the parent handles it), die with the parent whatever kills it, and are terminated at once when the parent is interrupted. Where forking is not safe — not
Linux, Ray's gRPC threads live in this process, or this process is itself a daemonic worker — or there is one core
or one figure, figures are drawn here, one after another.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tpa_dist.files import write_atomic
from tpa_dist.processes import stop_pool
from tpa_dist.report import drawserver
from tpa_dist.report.drawserver import can_fork, draw_job, fork_pool

Result = bytes | None | Exception


@dataclass(frozen=True)
class Figure:
    """A PNG file still to draw: draw(*args) gives its bytes (drawn with the report's figures, side by side)."""

    path: Path
    draw: Callable[..., bytes]
    args: tuple


Job = tuple[Callable[..., bytes | None], tuple]  # draw, args: draw(*args) gives the PNG bytes


class Drawing:
    """Figures drawn as they are added: each job goes to the drawing processes as soon as it is added — the report
    adds a figure the moment its query returned and goes on with the next queries — until `results()`. Where a
    drawing server runs (drawserver.py: the command line starts one) it draws them; else the first `add` forks
    children here (see the module docstring); where neither can be, the jobs are drawn one after another in
    `results()`. `workers`: at most this many children of its own (the jobs expected)."""

    def __init__(
        self, errors: tuple[type[Exception], ...], before: Callable[[], None] | None = None, workers: int = 2
    ) -> None:
        self.errors, self.before = errors, before
        self.jobs: list[Job] = []
        self.where: list[tuple[str, object]] = []  # per job: ("server", id) | ("pool", future) | ("here", None)
        self.server = drawserver.running()
        self.pool: ProcessPoolExecutor | None = None
        workers = min(workers, os.cpu_count() or 1)
        if self.server is None and workers >= 2 and can_fork():
            self.pool = fork_pool(workers)

    def add(self, job: Job) -> None:
        """Draw `job` (draw, args): its arguments go to a drawing process by pipe."""
        self.jobs.append(job)
        try:
            if self.server is not None:
                try:
                    self.where.append(("server", self.server.send(self.before, *job)))
                    return
                except (OSError, pickle.PicklingError, AttributeError, TypeError):  # gone, or a job that cannot go
                    pass
            if self.pool is not None:  # the children fork at the first submit
                self.where.append(("pool", self.pool.submit(draw_job, self.before, *job)))
                return
        except BaseException:
            self.stop()
            raise
        self.where.append(("here", None))

    def results(self) -> list[Result]:
        """draw(*args) of every job, in order: its PNG bytes (or None), or the exception of type `errors` it raised."""
        try:
            ids = [ref for kind, ref in self.where if kind == "server"]
            try:
                served = iter(self.server.receive(ids)) if ids else iter(())
            except (EOFError, OSError):  # the server died: what it had is drawn here
                served = None
            out: list[Result] = []
            for (kind, ref), job in zip(self.where, self.jobs):
                if kind == "server" and served is not None:
                    out.append(self._own(next(served)))
                elif kind == "pool":
                    try:
                        out.append(ref.result())
                    except self.errors as exc:
                        out.append(exc)
                    except pickle.PicklingError:  # a job that cannot go to a child is drawn here
                        out.append(_guarded((draw_job, (self.before, *job)), self.errors))
                else:
                    out.append(_guarded((draw_job, (self.before, *job)), self.errors))
            if self.pool is not None:
                self.pool.shutdown()
                self.pool = None
            return out
        except BaseException:  # Ctrl-C, SIGTERM or a failure: the drawing stops now, nothing waits on it
            self.stop()
            raise

    def _own(self, result: object) -> Result:
        """A served result: PNG bytes, or a figure's error of the kinds asked for; any other exception is raised."""
        if isinstance(result, BaseException) and not isinstance(result, self.errors):
            raise result
        return result  # type: ignore[return-value]

    def stop(self) -> None:
        """The drawing stops now (the caller was interrupted or failed)."""
        if self.pool is not None:
            stop_pool(self.pool)
            self.pool = None
        if self.server is not None:
            drawserver.stop()
            self.server = None


def draw_all(
    jobs: Sequence[Job], errors: tuple[type[Exception], ...], before: Callable[[], None] | None = None
) -> list[Result]:
    """draw(*args) for every (draw, args) job, in order: its PNG bytes (or None), or the exception of type `errors`
    it raised. `before()` runs where each figure is drawn, first (injected faults)."""
    drawing = Drawing(errors, before, workers=len(jobs))
    for job in jobs:
        drawing.add(job)
    return drawing.results()


def _guarded(job: Job, errors: tuple[type[Exception], ...]) -> Result:
    try:
        return job[0](*job[1])
    except errors as exc:
        return exc


def write_figures(figures: Sequence[Figure], drawn: Sequence[Result] | None = None) -> list[str | None]:
    """Write each figure's PNG (drawing them first unless `drawn`): per figure None, or why it was not written —
    one failed figure never costs the others."""
    if drawn is None:
        drawn = draw_all([(f.draw, f.args) for f in figures], (Exception,))
    out: list[str | None] = []
    for figure, png in zip(figures, drawn):
        try:
            if isinstance(png, Exception):
                raise png
            figure.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(figure.path, png or b"")
            out.append(None)
        except Exception as exc:  # noqa: BLE001
            out.append(f"{figure.path.name} not written: {type(exc).__name__}: {exc}")
    return out

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

import multiprocessing
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tpa_dist.files import write_atomic
from tpa_dist.processes import child_of, stop_pool

Result = bytes | None | Exception


@dataclass(frozen=True)
class Figure:
    """A PNG file still to draw: draw(*args) gives its bytes (drawn with the report's figures, side by side)."""

    path: Path
    draw: Callable[..., bytes]
    args: tuple


Job = tuple[Callable[..., bytes | None], tuple]  # draw, args: draw(*args) gives the PNG bytes

_before: Callable[[], None] | None = None  # inherited by the forked children (injected faults)


def _draw_one(draw: Callable[..., bytes | None], args: tuple) -> bytes | None:
    if _before is not None:
        _before()
    return draw(*args)


def can_fork() -> bool:
    """Whether figures may be drawn in forked children here (see the module docstring)."""
    if not sys.platform.startswith("linux") or multiprocessing.current_process().daemon:
        return False  # (macOS frameworks are not fork-safe; Windows has no fork)
    ray = sys.modules.get("ray")
    return not (ray is not None and ray.is_initialized())


class Drawing:
    """Figures drawn as they are added: the first `add` forks the children (see the module docstring) and each job
    goes to them as soon as it is added — the report adds a figure the moment its query returned and goes on with
    the next queries — until `results()`. Where children cannot be forked, the jobs are drawn one after another in
    `results()`. `workers`: at most this many children (the jobs expected)."""

    def __init__(
        self, errors: tuple[type[Exception], ...], before: Callable[[], None] | None = None, workers: int = 2
    ) -> None:
        self.errors, self.before = errors, before
        self.jobs: list[Job] = []
        self.futures: list = []
        self.pool: ProcessPoolExecutor | None = None
        workers = min(workers, os.cpu_count() or 1)
        if workers >= 2 and can_fork():
            self.pool = ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("fork"), initializer=child_of, initargs=(os.getpid(),)
            )

    def add(self, job: Job) -> None:
        """Draw `job` (draw, args): its arguments go to a child by pipe (they did not exist when it forked)."""
        global _before
        self.jobs.append(job)
        if self.pool is None:
            return
        _before = self.before  # the children fork at the first submit and inherit it
        try:
            self.futures.append(self.pool.submit(_draw_one, *job))
        except BaseException:
            self.stop()
            raise
        finally:
            _before = None

    def results(self) -> list[Result]:
        """draw(*args) of every job, in order: its PNG bytes (or None), or the exception of type `errors` it raised."""
        if self.pool is None:
            if self.before is not None and self.jobs:
                self.before()
            return [_guarded(job, self.errors) for job in self.jobs]
        try:
            out: list[Result] = []
            for f in self.futures:
                try:
                    out.append(f.result())
                except self.errors as exc:
                    out.append(exc)
            self.pool.shutdown()
            self.pool = None
            return out
        except BaseException:  # Ctrl-C, SIGTERM or a failure: the children stop now, nothing waits on them
            self.stop()
            raise

    def stop(self) -> None:
        """The children stop now (the caller was interrupted or failed)."""
        if self.pool is not None:
            stop_pool(self.pool)
            self.pool = None


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

"""Draw a report's figures side by side: one forked process per core, each rendering whole figures with matplotlib.

A report's figures are independent and matplotlib is single-threaded, so with several cores the figures of one
report take about the time of the largest few instead of their sum (bench_small: ~1 s of a small model's 2 s
report). Children are forked after the queries ran and matplotlib was imported, draw from the rows they inherited
and send back PNG bytes; they never touch the database. Where forking is not safe — not Linux, Ray's gRPC threads
live in this process, or this process is itself a daemonic worker — or there is one core or one figure, figures
are drawn here, one after another.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

Result = bytes | None | Exception


@dataclass(frozen=True)
class Figure:
    """A PNG file still to draw: draw(*args) gives its bytes (drawn with the report's figures, side by side)."""

    path: Path
    draw: Callable[..., bytes]
    args: tuple


Job = tuple[Callable[..., bytes | None], tuple]  # draw, args: draw(*args) gives the PNG bytes

_jobs: Sequence[Job] = ()


def _draw_one(i: int) -> bytes | None:
    draw, args = _jobs[i]
    return draw(*args)


def can_fork() -> bool:
    """Whether figures may be drawn in forked children here (see the module docstring)."""
    if not sys.platform.startswith("linux") or multiprocessing.current_process().daemon:
        return False  # (macOS frameworks are not fork-safe; Windows has no fork)
    ray = sys.modules.get("ray")
    return not (ray is not None and ray.is_initialized())


def draw_all(jobs: Sequence[Job], errors: tuple[type[Exception], ...]) -> list[Result]:
    """draw(*args) for every (draw, args) job, in order: its PNG bytes (or None), or the exception of type `errors`
    it raised."""
    global _jobs
    workers = min(len(jobs), os.cpu_count() or 1)
    if workers < 2 or not can_fork():
        return [_guarded(job, errors) for job in jobs]
    _jobs = jobs  # inherited by the forked children: nothing of the rows is sent to them
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            futures = [pool.submit(_draw_one, i) for i in range(len(jobs))]
            out: list[Result] = []
            for f in futures:
                try:
                    out.append(f.result())
                except errors as exc:
                    out.append(exc)
            return out
    finally:
        _jobs = ()


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
            figure.path.write_bytes(png or b"")
            out.append(None)
        except Exception as exc:  # noqa: BLE001
            out.append(f"{figure.path.name} not written: {type(exc).__name__}: {exc}")
    return out

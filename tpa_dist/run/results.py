"""Where results go during a run: the sink buffers worker rows, flushes them to the store in whole batches, and
keeps the run's one set of counters (summary, progress bar, live progress file, throughput per device)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tpa_dist.compute.rows import DeltaRow, MatrixRow
from tpa_dist.db.live import write_live_progress
from tpa_dist.db.store import Store
from tpa_dist.run.progress import Progress
from tpa_dist.text import printable

FLUSH_ROWS = 256
FLUSH_SECONDS = 1.0  # results are stored (and `status` sees them) within a second of arriving
SHOWN_FAILURES = 20


@dataclass
class RunSummary:
    """What a submit did: counters, the models it analyzed, and every problem once (model, tensor, step)."""

    run_id: str
    models: list[tuple[str, str]] = field(default_factory=list)  # (model_id, revision) analyzed
    total: int = 0
    done: int = 0
    failed: int = 0
    reused: int = 0
    bytes: int = 0
    seconds: float = 0.0
    ray_startup_s: float = 0.0
    failures: list[str] = field(default_factory=list)  # model-, tensor- and step-level messages, each once
    warnings: list[str] = field(default_factory=list)  # things the run worked around (shown, not failures)
    outputs: str | None = None  # where the CSV and report went
    phases: dict[str, float | None] = field(default_factory=dict)  # seconds per phase: where the time went
    matrix_failures: int = 0  # messages of `failures` that are failed matrices' (the rest: the run's other problems)
    said: list[str] = field(default_factory=list)  # failures already named on the console when they happened
    reasons: Counter[str] = field(default_factory=Counter)  # models that failed, by reason (a census's summary)
    cohort: str | None = None  # the census's cohort, in words (its name, size, and whether it was listed now)
    node_caches: list[dict] = field(default_factory=list)  # a census's budget on a cluster: each node's report
    streamed: int = 0  # entries planned while the analysis ran (a census), and the seconds that took
    streamed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures

    def fail(self, message: str, matrix: bool = False, said: bool = False) -> None:
        """Record a problem (`said`: the console named it when it happened; the summary only counts it)."""
        message = printable(message)  # one line, whatever a tensor or model name holds
        if message not in self.failures:
            self.failures.append(message)
            self.matrix_failures += matrix
            if said:
                self.said.append(message)

    @property
    def analysis_s(self) -> float:
        """Seconds of the matrix phase alone (the embeddings, the outputs are their own phases)."""
        return self.phases.get("analysis") or 0.0

    def describe(self, console: bool = False) -> str:
        """The summary, every problem listed; on the command line's console (`console`), the problems its log
        already named while planning are only counted."""
        analysis = self.analysis_s
        rate = self.done / analysis if analysis > 0 else 0.0
        spent = {k: v for k, v in self.phases.items() if v and v >= 0.05 and k not in ("analysis", "writing")}
        whole = sum(v for k, v in self.phases.items() if v and k != "writing")
        parts = ", ".join(f"{_PHASE_WORDS.get(k, k)} {v:.1f}s" for k, v in spent.items())
        other = len(self.failures) - self.matrix_failures
        lines = [
            f"run {self.run_id}: {self.done}/{self.total} analyzed ({self.reused} reused from earlier runs), "
            f"{self.failed} failed"
            + (f" and {other} other problem(s)" if other else "")
            + f", {self.bytes / 2**20:.1f} MiB; analysis {analysis:.1f}s"
            + (f" ({rate:.1f} mat/s)" if self.done and analysis > 0 else "")
            + (f"; whole run {whole:.1f}s ({parts})" if whole > analysis and parts else "")
        ]
        if self.streamed:
            lines.append(
                f"{self.streamed} model(s) planned while the analysis ran ({self.streamed_s:.1f}s of planning, "
                "inside the analysis time)"
            )
        if self.cohort:
            lines.append(self.cohort)
        if self.reasons:
            lines.append(
                "failures by reason: " + "; ".join(f"{n} {reason}" for reason, n in self.reasons.most_common())
            )
        said = self.said if console else []
        problems = [f for f in self.failures if f not in said]
        if said:
            problems.insert(0, f"{len(self.said)} model(s) skipped while planning, each named above")
        for title, items in (("warnings", [printable(w) for w in self.warnings]), ("problems", problems)):
            if not items:
                continue
            lines.append(f"{title}:")
            lines += [f"  - {msg}" for msg in items[:SHOWN_FAILURES]]
            if len(items) > SHOWN_FAILURES:
                lines.append(
                    f"  ... and {len(items) - SHOWN_FAILURES} more "
                    "(SELECT matrix_key, error FROM matrix_analysis WHERE status = 'error')"
                )
        return "\n".join(lines)


#: the phases' names in the summary line (Ray's start-up is only there when Ray started)
_PHASE_WORDS = {"startup": "start-up", "plan": "planning", "ray_startup": "Ray start-up", "embedding": "embeddings",
                "outputs": "CSV and report"}  # fmt: skip


class ResultSink:
    """Receives (row, spectrum) pairs from the scheduler; writes them in whole transactions (size- or
    time-triggered), and counts them once for the summary, the progress bar and the live progress file."""

    def __init__(
        self,
        store: Store,
        db: str,
        summary: RunSummary,
        settings_id: str,
        progress: Progress,
        explains: Callable[[str], bool] = lambda _msg: False,
        on_stored: Callable[[list[tuple[str, str, str]]], None] = lambda _keys: None,
        urgent: Callable[[], bool] = lambda: False,
    ) -> None:
        self.store = store
        self.db = db
        self.summary = summary
        self.settings_id = settings_id
        self.progress = progress
        self.explains = explains  # errors already reported once elsewhere (a shard that never downloaded)
        self.on_stored = on_stored  # (model, revision, matrix) of rows just committed: their shards may go
        self.urgent = urgent  # something waits for rows to be committed (a download on a disk budget)
        self.by_device: dict[str, dict[str, float]] = {}
        self.deltas: list[DeltaRow] = []
        self.delta_spectra: list[tuple[DeltaRow, np.ndarray]] = []
        self.rows: list[MatrixRow] = []
        self.reasons: list[str | None] = []  # each row's fallback_reason
        self.spectra: list[tuple[MatrixRow, np.ndarray]] = []
        self.last_flush = time.monotonic()
        self.write_s = 0.0  # seconds spent writing batches

    def add(self, results: list[tuple[MatrixRow, np.ndarray | None]], fallback_reason: str | None) -> None:
        """Buffer one batch's results and count them."""
        s = self.summary
        failed = nbytes = 0
        device = "cpu"
        for row, sv in results:
            if isinstance(row, DeltaRow):
                self.deltas.append(row)
                if sv is not None:
                    self.delta_spectra.append((row, sv))
            else:
                self.rows.append(row)
                self.reasons.append(fallback_reason)
            device = row.device or device
            stats = self.by_device.setdefault(device, {"matrices": 0, "bytes": 0, "seconds": 0.0})
            stats["matrices"] += 1
            row_bytes = getattr(row, "nbytes", 0)
            stats["bytes"] += row_bytes
            stats["seconds"] += row.seconds or 0.0
            nbytes += row_bytes
            if row.status == "error":
                failed += 1
                if not self.explains(row.error):
                    s.fail(f"{row.model_id}: {row.error}", matrix=True)
            if sv is not None and not isinstance(row, DeltaRow):
                self.spectra.append((row, sv))
        s.done += len(results) - failed
        s.failed += failed
        s.bytes += nbytes
        self.progress.update(len(results), nbytes, failed, device)

    def maybe_flush(self) -> None:
        """Flush when enough rows are buffered or enough time has passed."""
        buffered = len(self.rows) + len(self.deltas)
        due = time.monotonic() - self.last_flush >= FLUSH_SECONDS or self.urgent()
        if buffered >= FLUSH_ROWS or (buffered and due):
            self.flush()

    def flush(self) -> None:
        """Write the buffered rows and spectra as one transaction, then publish the counters."""
        s = self.summary
        t0 = time.perf_counter()
        stamps = {"settings_id": self.settings_id, "run_id": s.run_id}
        self.store.write_batch(self.rows, self.spectra, stamps, self.reasons)
        self.store.write_deltas(self.deltas, self.delta_spectra, stamps)
        self.on_stored([(r.model_id, r.revision, r.matrix_key) for r in self.rows])
        self.rows, self.spectra, self.reasons, self.deltas, self.delta_spectra = [], [], [], [], []
        self.store.progress(s.run_id, s.total, s.done + s.reused, s.failed, s.bytes)
        write_live_progress(self.db, s, self.progress)
        self.last_flush = time.monotonic()
        self.write_s += time.perf_counter() - t0

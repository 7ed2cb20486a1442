"""Fault injection: the hooks the tests (and a deployment check of the fallback paths) use, read once from the
environment by the driver into one `Faults` plan that is passed to whoever acts on it — workers, the store, the
driver's own phases. No other module reads these variables (docs/environment.md lists them)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tpa_dist.files import write_atomic

FAKE_GPU_MEMORY = 16 << 30


@dataclass(frozen=True)
class Faults:
    """What to inject; every field's default injects nothing."""

    fake_gpu: bool = False  # TPA_DIST_FAKE_GPU=1: without CUDA, GPU workers run the GPU code path on the CPU
    fake_gpu_memory: int = FAKE_GPU_MEMORY  # TPA_DIST_FAKE_GPU_MEMORY: the free memory a fake GPU reports
    oom_bytes: int | None = None  # TPA_DIST_INJECT_OOM_BYTES: the GPU path raises CUDA OOM above this many bytes
    kill: str | None = None  # TPA_DIST_INJECT_KILL: a worker SIGKILLs itself at a matching matrix, every time ...
    kill_marker: str | None = None  # ... or, with TPA_DIST_INJECT_KILL_MARKER, once (this file records it)
    delay_s: float = 0.0  # TPA_DIST_INJECT_DELAY_S: every task sleeps this long first
    hold: str | None = None  # TPA_DIST_INJECT_HOLD: matching matrices wait ...
    hold_until: str | None = None  # ... TPA_DIST_INJECT_HOLD_UNTIL: until this file exists ...
    hold_for_gpu: bool = False  # ... TPA_DIST_INJECT_HOLD_FOR_GPU=1: which a GPU worker's first matching task creates
    write_pause_s: float = 0.0  # TPA_DIST_INJECT_WRITE_PAUSE_S: each database write pauses inside its transaction
    pause_phase: str | None = None  # TPA_DIST_INJECT_PAUSE_PHASE: the driver waits at the start of this phase ...
    pause_until: str | None = None  # ... TPA_DIST_INJECT_PAUSE_UNTIL: until this file exists (it writes `.paused`)
    hide_prefix: str | None = None  # TPA_DIST_HIDE_PREFIX: workers act as if paths under this did not exist

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Faults:
        """The plan the environment asks for; a value that is not a number is one JobError naming it."""
        from tpa_dist import constants

        def text(name: str) -> str | None:
            return constants.text(f"TPA_DIST_{name}", env)

        def number(name: str, default: float) -> float:
            return constants.number(f"TPA_DIST_{name}", default, env)

        oom = text("INJECT_OOM_BYTES")
        return cls(
            fake_gpu=text("FAKE_GPU") == "1",
            fake_gpu_memory=int(number("FAKE_GPU_MEMORY", FAKE_GPU_MEMORY)),
            oom_bytes=int(number("INJECT_OOM_BYTES", 0)) if oom is not None else None,
            kill=text("INJECT_KILL"),
            kill_marker=text("INJECT_KILL_MARKER"),
            delay_s=number("INJECT_DELAY_S", 0.0),
            hold=text("INJECT_HOLD"),
            hold_until=text("INJECT_HOLD_UNTIL"),
            hold_for_gpu=text("INJECT_HOLD_FOR_GPU") == "1",
            write_pause_s=number("INJECT_WRITE_PAUSE_S", 0.0),
            pause_phase=text("INJECT_PAUSE_PHASE"),
            pause_until=text("INJECT_PAUSE_UNTIL"),
            hide_prefix=text("HIDE_PREFIX"),
        )

    def before_task(self, matrix_key: str, worker: str, gpu: bool = False) -> None:
        """In a worker, before a task: the delay, the hold, the kill. With `hold_for_gpu`, a GPU worker's matching
        task releases the hold instead of waiting (so a test knows the GPU worker takes work, on a starved machine
        as on a quiet one)."""
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.hold and self.hold_until and self.hold in matrix_key and self.hold_for_gpu and gpu:
            Path(self.hold_until).touch()
        if self.hold and self.hold_until and self.hold in matrix_key:
            while not os.path.exists(self.hold_until):  # a test releases it by creating the file
                time.sleep(0.05)
        if self.kill and self.kill in matrix_key:
            if self.kill_marker:
                if Path(self.kill_marker).exists():
                    return
                write_atomic(self.kill_marker, f"{worker} {matrix_key}\n")  # a polling test never sees it empty
            os.kill(os.getpid(), signal.SIGKILL)

    def gpu_oom(self, nbytes: int) -> bool:
        """On the GPU path: whether a tensor of `nbytes` meets an injected CUDA out-of-memory error."""
        return self.oom_bytes is not None and nbytes > self.oom_bytes

    def visible(self, path: str) -> bool:
        """Whether a worker sees `path` (a node that cannot see the driver's files, for the tests)."""
        return os.path.exists(path) and not (self.hide_prefix and path.startswith(self.hide_prefix))

    def pause(self, phase: str, db: str | os.PathLike[str]) -> None:
        """In the driver, at the start of `phase`: wait until the release file exists (writing `{db}.paused` with the
        phase name first, so a test knows the run is there)."""
        if self.pause_phase != phase or not self.pause_until:
            return
        write_atomic(f"{db}.paused", phase)  # whole: a test polling for it never reads it empty
        from tpa_dist.interrupts import check

        while not os.path.exists(self.pause_until):
            check()
            time.sleep(0.05)


NO_FAULTS = Faults()

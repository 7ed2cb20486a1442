"""Progress of a run: a tqdm bar on a terminal, plain log lines every few seconds otherwise."""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("tpa_dist")


class Progress:
    def __init__(self, total: int, total_bytes: int, *, enabled: bool = True, interval_s: float = 10.0) -> None:
        self.total, self.total_bytes = total, total_bytes
        self.done = self.failed = self.bytes = 0
        self.by_device: dict[str, int] = {}
        self.start = time.monotonic()
        self.interval_s = interval_s
        self._last_log = self.start
        self.bar = None
        self.note: str | None = None  # said after the counts (a census still being planned: how far)
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="mat", dynamic_ncols=True, file=sys.stderr)

    def update(self, n: int, nbytes: int, failed: int, device: str) -> None:
        self.done += n
        self.failed += failed
        self.bytes += nbytes
        self.by_device[device] = self.by_device.get(device, 0) + n
        if self.bar is not None:
            self.bar.update(n)
            devs = " ".join(f"{d}={c}" for d, c in sorted(self.by_device.items()))
            self.bar.set_postfix_str(
                f"{self.bytes / 2**30:.2f}/{self.total_bytes / 2**30:.2f} GiB {devs}"
                + (f" failed={self.failed}" if self.failed else "")
                + (f" ({self.note})" if self.note else "")
            )
            return
        now = time.monotonic()
        if now - self._last_log >= self.interval_s or (self.done == self.total and self.note is None):
            self._last_log = now
            elapsed = now - self.start
            rate = self.done / elapsed if elapsed > 0 else 0.0
            eta = (self.total - self.done) / rate if rate > 0 else float("nan")
            log.info(
                "progress %d/%d matrices%s, %.2f/%.2f GiB, %.1f mat/s, ETA%s %.0fs, failed %d, %s",
                self.done,
                self.total,
                f" ({self.note}; the total grows)" if self.note else "",
                self.bytes / 2**30,
                self.total_bytes / 2**30,
                rate,
                " of what is planned" if self.note else "",
                eta,
                self.failed,
                self.by_device,
            )

    def grow(self, n: int, nbytes: int, note: str | None) -> None:
        """More work planned (a census planned while it runs): the totals grow; `note` says how far planning is."""
        self.total += n
        self.total_bytes += nbytes
        self.note = note
        if self.bar is not None:
            self.bar.total = self.total
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

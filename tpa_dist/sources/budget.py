"""Hub shards on bounded disk (`--max-cache-gib`): a census's shards are fetched just in time, in the run's order,
into a cache the census owns, and each is deleted as soon as every task that reads it is stored — the bytes on disk
never exceed the budget. A shard larger than the budget is one error for its model; the others go on. Files the
user already had in their own Hugging Face cache are read in place and never counted or deleted (they are not
pending: resolve.py sends only missing shards here).

DOWNLOADERS threads take the shards in order: each reserves its shard's whole size before the first byte (a partial
file is inside the budget too), waits while the budget is full and goes on as stored shards are deleted."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tpa_dist.sources.hub import COMING, READY, PendingShard, ShardState, is_disk_full
from tpa_dist.sources.node_budget import size_text

log = logging.getLogger("tpa_dist")

DOWNLOADERS = 4  # shards fetched at once (a small shard costs more in requests than in bytes)


@dataclass(frozen=True)
class BudgetedShard:
    """One pending shard of one model, with where its download goes."""

    repo_id: str
    revision: str
    shard: PendingShard
    fetch: dict  # hf_hub_download arguments (endpoint, cache_dir: the census's cache)


def census_cache(db: str | os.PathLike[str]) -> Path:
    """The cache a census owns: beside its database (one writer per database, so no other run shares it)."""
    path = Path(db)
    return path.with_name(f"{path.name}.census-cache")


class BudgetedDownloads:
    """Downloads every pending shard of a run, in order, within `limit` bytes on disk; `stored(paths)` says that
    tasks reading these files are stored (a file is deleted when its last task is). A census planned while it runs
    `extend`s it model by model; its downloaders wait for more shards until `close()`."""

    def __init__(self, shards: list[BudgetedShard], limit: int, root: Path) -> None:
        self.shards = shards
        self.limit = limit
        self.root = root
        self.used = 0  # bytes reserved: on disk, or being downloaded
        self.peak = 0  # the most ever reserved
        self.blocked = False  # the next shard waits for stored ones to be deleted (results should be written now)
        self.pending_reads: dict[str, int] = {}  # path -> tasks still to store
        self._reads: dict[tuple[str, str, str], set[str]] = {}  # (model, revision, matrix) -> the files it reads
        self._size = {s.shard.local_path: s.shard.size for s in shards}
        self._closed = False  # no more shards will come (extend)
        self._on_disk: set[str] = set()
        self._ready: set[str] = set()
        self._failed: dict[str, tuple[str, str]] = {}  # path -> (repo, message)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._next = 0  # the next shard a downloader takes (in the run's order)
        self._threads = [
            threading.Thread(target=self._run, name=f"fetch within budget {i}", daemon=True) for i in range(DOWNLOADERS)
        ]

    # -- what the run tells it ----------------------------------------------------------------------------------
    def track(self, key: tuple[str, str, str], paths: Iterable[str]) -> None:
        """The task `key` (model, revision, matrix) will read `paths`: each of them stays until it is stored; call
        before the shards' downloads can start (before start(), or in extend())."""
        mine = {p for p in paths if p in self._size}
        if mine:
            self._reads[key] = mine
        for path in mine:
            self.pending_reads[path] = self.pending_reads.get(path, 0) + 1

    def extend(self, shards: list[BudgetedShard], tasks: Iterable[tuple[tuple[str, str, str], Iterable[str]]]) -> None:
        """More shards, after those given, and the tasks (key, paths) that read them (track)."""
        with self._cond:
            self._size.update({s.shard.local_path: s.shard.size for s in shards})
            for key, paths in tasks:
                self.track(key, paths)
            self.shards.extend(shards)
            self._cond.notify_all()

    def close(self) -> None:
        """No more shards will come: the downloaders end once every shard given is taken."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def stored(self, keys: Iterable[tuple[str, str, str]]) -> None:
        """These tasks' rows are stored: the files no task still needs are deleted."""
        done = []
        with self._cond:
            for path in (p for key in keys for p in self._reads.pop(key, ())):
                if path not in self.pending_reads:
                    continue
                self.pending_reads[path] -= 1
                if self.pending_reads[path] <= 0:
                    del self.pending_reads[path]
                    done.append(path)
        for path in done:
            self._delete(path)

    # -- the shape the scheduler's gate and the driver expect (hub.ShardFetcher's) -------------------------------
    def start(self) -> BudgetedDownloads:
        self._clear_leftovers()
        for thread in self._threads:
            thread.start()
        return self

    def paths(self) -> set[str]:
        return set(self._size)

    def _ended(self) -> bool:
        return all(t.ident is not None and not t.is_alive() for t in self._threads)

    def state(self, path: str) -> ShardState:
        ended = self._ended()  # read first: no race with the last download's add
        with self._cond:
            if path in self._ready:
                return READY
            if path in self._failed:
                return ShardState(error=self._failed[path][1])
        return ShardState(error=f"the download of {Path(path).name} never started") if ended else COMING

    def failures(self) -> dict[str, str]:
        with self._cond:
            return {path: message for path, (_, message) in self._failed.items()}

    def messages(self) -> list[str]:
        """One line per model and distinct failure."""
        with self._cond:
            return sorted({f"model {repo}: {message}" for repo, message in self._failed.values()})

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the downloads; once no task reads a shard any more, the cache's own files go too (locks, refs)."""
        for thread in self._threads:
            thread.join(timeout)
        if self._ended() and not self.pending_reads:
            shutil.rmtree(self.root, ignore_errors=True)

    # -- the work ------------------------------------------------------------------------------------------------
    def _clear_leftovers(self) -> None:
        """An interrupted census leaves files in its cache: all are removed (the cache is the census's own, and a file
        on disk that the budget did not reserve would make its count untrue); what this run reads is fetched again."""
        if self.root.exists():
            shutil.rmtree(self.root, ignore_errors=True)

    def _reserve(self, size: int) -> bool:
        """Wait until `size` more bytes fit the budget; False when stopped."""
        with self._cond:
            while self.used + size > self.limit and not self._stop.is_set():
                self.blocked = True
                self._cond.wait(0.5)
            self.blocked = False
            if self._stop.is_set():
                return False
            self.used += size
            self.peak = max(self.peak, self.used)
            return True

    def _release(self, path: str) -> None:
        with self._cond:
            if path in self._on_disk:
                self._on_disk.discard(path)
                self.used -= self._size[path]
            self._cond.notify_all()

    def _fail(self, item: BudgetedShard, message: str) -> None:
        with self._cond:
            self._failed[item.shard.local_path] = (item.repo_id, message)

    def _delete(self, path: str) -> None:
        """Remove a stored shard (its snapshot link and the blob it points to) and give its bytes back."""
        target = os.path.realpath(path)
        for p in {path, target}:
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
            except OSError as exc:  # kept, and still counted: the budget stays true
                log.warning("could not delete %s after its matrices were stored: %s", p, exc)
                return
        with self._cond:
            self._ready.discard(path)
        self._release(path)

    def _take(self) -> BudgetedShard | None:
        """The next shard in the run's order; waits for more while the census is still being planned."""
        with self._cond:
            while self._next >= len(self.shards):
                if self._closed or self._stop.is_set():
                    return None
                self._cond.wait(0.5)
            self._next += 1
            return self.shards[self._next - 1]

    def _run(self) -> None:
        from huggingface_hub import hf_hub_download

        while (item := self._take()) is not None:
            path, size = item.shard.local_path, self._size[item.shard.local_path]
            if self._stop.is_set():
                self._fail(item, "download stopped (interrupted)")
                continue
            if path not in self.pending_reads:
                continue  # nothing reads it (stored by an earlier run)
            if size > self.limit:
                self._fail(
                    item,
                    f"{item.shard.filename} is {size_text(size)}, larger than --max-cache-gib "
                    f"{self.limit / 2**30:g} ({size_text(self.limit)}): its matrices cannot be analyzed within the "
                    "budget",
                )
                continue
            if not self._reserve(size):
                self._fail(item, "download stopped (interrupted)")
                continue
            with self._cond:
                self._on_disk.add(path)
            t0 = time.monotonic()
            try:
                for attempt in range(1, 4):
                    try:
                        hf_hub_download(item.repo_id, item.shard.filename, revision=item.revision, **item.fetch)
                        break
                    except Exception as exc:  # noqa: BLE001 - network errors of any stack: retry, resuming
                        if is_disk_full(exc) or attempt == 3:
                            raise
            except Exception as exc:  # noqa: BLE001 - this shard fails; the others go on
                self._fail(item, f"downloading {item.repo_id}/{item.shard.filename} failed: {exc}")
                self._remove_partial(item)
                continue
            with self._cond:
                self._ready.add(path)
            log.info(
                "%s: %s downloaded (%.1f MiB in %.1f s; %.2f of %.2f GiB of the census cache in use)",
                item.repo_id,
                item.shard.filename,
                size / 2**20,
                time.monotonic() - t0,
                self.used / 2**30,
                self.limit / 2**30,
            )

    def _remove_partial(self, item: BudgetedShard) -> None:
        """A failed download's files, so that its reserved bytes can be given back truthfully."""
        repo_dir = self.root / f"models--{item.repo_id.replace('/', '--')}"
        for partial in repo_dir.glob("blobs/*.incomplete"):
            partial.unlink(missing_ok=True)
        Path(item.shard.local_path).unlink(missing_ok=True)
        self._release(item.shard.local_path)


def free_bytes(path: Path) -> int:
    """Free disk where `path` is (or would be created)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


__all__ = ["BudgetedDownloads", "BudgetedShard", "census_cache", "free_bytes"]

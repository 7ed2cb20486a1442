"""Hub shards while they download: headers read by HTTP Range, shard files fetched one at a time in the
background so analysis of the shards that have arrived overlaps the download of the rest."""

from __future__ import annotations

import errno
import logging
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tpa_dist.checkpoint.header import FileHeader, check_length, parse_header
from tpa_dist.errors import HeaderError

log = logging.getLogger("tpa_dist")

#: First Range request: 8-byte length plus this many header bytes (real shard headers are 10–200 kB).
FIRST_READ = 256 * 1024


@dataclass(frozen=True, order=True)
class PendingShard:
    """A safetensors file of a Hub repo that is not in the local cache yet."""

    filename: str
    local_path: str  # where huggingface_hub will put it (snapshot folder or --out folder)
    size: int


def _read_range(url: str, start: int, end: int, headers: dict[str, str], path: str) -> bytes:
    """Bytes [start, end] of `url`, read as a stream so a server that ignores Range costs no more than that."""
    from huggingface_hub import get_session

    want = end - start + 1
    chunks: list[bytes] = []
    got = 0
    try:
        with get_session().stream("GET", url, headers={**headers, "Range": f"bytes={start}-{end}"}) as resp:
            resp.raise_for_status()
            skip = start if resp.status_code == 200 else 0  # Range ignored: the body starts at byte 0
            for chunk in resp.iter_bytes():
                if skip:
                    cut = min(skip, len(chunk))
                    chunk, skip = chunk[cut:], skip - cut
                chunks.append(chunk)
                got += len(chunk)
                if got >= want:
                    break
    except Exception as exc:  # noqa: BLE001 - any HTTP stack error: name the file
        raise HeaderError(path, f"cannot read the header from the Hub: {exc}") from None
    return b"".join(chunks)[:want]


def read_remote_header(
    repo_id: str, shard: PendingShard, revision: str, endpoint: str | None, token: str | None = None
) -> FileHeader:
    """Validate a Hub shard's safetensors header from at most two Range requests, without its data."""
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers

    url = hf_hub_url(repo_id, shard.filename, revision=revision, endpoint=endpoint)
    headers = build_hf_headers(token=token)
    path = shard.local_path
    first = _read_range(url, 0, min(shard.size, 8 + FIRST_READ) - 1, headers, path)
    if len(first) < 8:
        raise HeaderError(path, f"file is {shard.size} bytes, too short for the 8-byte header length")
    (hlen,) = struct.unpack("<Q", first[:8])
    check_length(path, hlen, shard.size)
    raw = first[8 : 8 + hlen]
    if len(raw) < hlen:
        raw += _read_range(url, 8 + len(raw), 8 + hlen - 1, headers, path)
    if len(raw) != hlen:
        raise HeaderError(path, f"the Hub sent {len(raw)} of the header's {hlen} bytes")
    return parse_header(path, shard.size, raw)


def is_disk_full(exc: BaseException) -> bool:
    """True for 'no space left' and 'file too large' anywhere in an exception's chain."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


@dataclass(frozen=True)
class ShardState:
    """Where a file that tasks read stands: arrived, still coming, or never coming (and why)."""

    ready: bool = False
    error: str | None = None

    @property
    def coming(self) -> bool:
        return not self.ready and self.error is None


READY = ShardState(ready=True)
COMING = ShardState()


class ShardFetcher:
    """Downloads a model's pending shards in order on a background thread; `state(path)` says whether a
    shard's file is there, coming, or never will be (ShardState)."""

    def __init__(self, repo_id: str, revision: str, shards: list[PendingShard], download_kwargs: dict) -> None:
        self.repo_id = repo_id
        self.revision = revision
        self.shards = shards
        self.kwargs = download_kwargs
        self._failed: dict[str, str] = {}
        self._ready: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"fetch {repo_id}", daemon=True)

    def start(self) -> ShardFetcher:
        self._thread.start()
        return self

    def paths(self) -> set[str]:
        return {s.local_path for s in self.shards}

    def state(self, path: str) -> ShardState:
        ended = self._thread.ident is not None and not self._thread.is_alive()  # read first: no race with its last add
        with self._lock:
            if path in self._ready:
                return READY
            if path in self._failed:
                return ShardState(error=self._failed[path])
        return ShardState(error=f"the download of {self.repo_id} ended without {Path(path).name}") if ended else COMING

    def failures(self) -> dict[str, str]:
        """Shard path -> why it was not downloaded."""
        with self._lock:
            return dict(self._failed)

    def stop(self) -> None:
        """Finish the current file, fetch no more (Ctrl-C)."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def messages(self) -> list[str]:
        """One line per distinct failure, naming the model."""
        return [f"model {self.repo_id}: {m}" for m in sorted(set(self.failures().values()))]

    def stored(self, keys: object) -> None:
        """Shards of the Hugging Face cache are kept (a census on a budget deletes its own: budget.py)."""

    blocked = False  # never waits for stored results (a census on a budget does)

    def _fail_rest(self, shards: list[PendingShard], message: str) -> None:
        with self._lock:
            for shard in shards:
                self._failed[shard.local_path] = message

    def _run(self) -> None:
        from huggingface_hub import hf_hub_download

        for i, shard in enumerate(self.shards):
            if self._stop.is_set():
                self._fail_rest(self.shards[i:], "download stopped (interrupted)")
                return
            t0 = time.monotonic()
            try:
                for attempt in range(1, 4):
                    try:
                        hf_hub_download(self.repo_id, shard.filename, revision=self.revision, **self.kwargs)
                        break
                    except Exception as exc:  # noqa: BLE001 - network errors of any stack: retry, resuming
                        if is_disk_full(exc) or attempt == 3:
                            raise
                        log.warning("%s: %s interrupted (%s); resuming", self.repo_id, shard.filename, exc)
            except Exception as exc:  # noqa: BLE001 - recorded per shard; the driver reports it
                if is_disk_full(exc):
                    where = Path(shard.local_path).parent
                    message = (
                        f"disk full while downloading {self.repo_id}/{shard.filename} into {where}: free space (or "
                        "point HF_HUB_CACHE at a larger disk) and run the same submit again — stored results are kept "
                        "and the partial file resumes"
                    )
                    self._fail_rest(self.shards[i:], message)
                    return
                self._fail_rest([shard], f"downloading {self.repo_id}/{shard.filename} failed: {exc}")
                continue
            with self._lock:
                self._ready.add(shard.local_path)
            seconds = max(time.monotonic() - t0, 1e-9)
            log.info(
                "%s: %s downloaded (%d/%d, %.1f MiB at %.1f MiB/s)",
                self.repo_id,
                shard.filename,
                i + 1,
                len(self.shards),
                shard.size / 2**20,
                shard.size / 2**20 / seconds,
            )


class Downloads:
    """The background shard downloads of one run, across models: `state(path)` for the scheduler's gate."""

    def __init__(self) -> None:
        self.fetchers: list[ShardFetcher] = []
        self._owner: dict[str, ShardFetcher] = {}
        self.started = False

    def __bool__(self) -> bool:
        return bool(self.fetchers)

    def add(self, fetcher: ShardFetcher) -> None:  # or a budget.BudgetedDownloads: the same shape
        """Own `fetcher`'s files (again, after it was extended), started at once when the others are."""
        if fetcher not in self.fetchers:
            self.fetchers.append(fetcher)
            if self.started:
                fetcher.start()
        self._owner.update(dict.fromkeys(fetcher.paths(), fetcher))

    def start(self) -> None:
        self.started = True
        for fetcher in self.fetchers:
            fetcher.start()

    def stop(self) -> None:
        for fetcher in self.fetchers:
            fetcher.stop()

    def state(self, path: str) -> ShardState:
        """Ready (a file not being downloaded is there already), coming, or why it never will be."""
        fetcher = self._owner.get(path)
        return READY if fetcher is None else fetcher.state(path)

    def explains(self, error: str) -> bool:
        """True when a stored error row is one of the download failures (reported once per model instead)."""
        return any(error.endswith(m) for f in self.fetchers for m in f.failures().values())

    def join(self) -> list[str]:
        """Wait for every download; one message per model and distinct failure."""
        out = []
        for fetcher in self.fetchers:
            fetcher.join()
            out += fetcher.messages()
        return out

    def waiting(self) -> bool:
        """Whether a download waits for stored results (a census on a budget): the sink writes at once."""
        return any(f.blocked for f in self.fetchers)

    def stored(self, keys: list[tuple[str, str, str]]) -> None:
        """Rows of these tasks (model, revision, matrix) are stored: a census on a budget deletes the shards no
        task still reads."""
        for fetcher in self.fetchers:
            fetcher.stored(keys)


__all__ = ["Downloads", "PendingShard", "ShardFetcher", "is_disk_full", "read_remote_header"]

"""A census's disk budget on every node of a cluster (`--max-cache-gib` with `--address`): the workers of a node fetch
their own Hub shards, so the budget is kept where the bytes land — one ledger per node, shared by its workers.

The ledger is a JSON file in the census's node cache, read and rewritten under an exclusive file lock. Before a
worker fetches the shards of its next tasks it *reserves* all of them at once: the bytes of those not on the node
yet must fit beside every file the ledger counts, or the worker waits holding nothing (so two workers can never
wait on each other's half-reservation). Files no task holds stay on disk for the next batch that reads them
(shard-local scheduling sends a shard's batches to one node) and are deleted, oldest first, when a reservation
needs their room — and all of them when the run ends (`finish`). A shard larger than the budget is one error for
the tasks that read it. A holder is `host:pid:thread`: the reservations of a worker process that died are dropped by the
next worker that looks (a killed worker never holds the budget). Files a node's user already had in their own
Hugging Face cache are read in place, never counted or deleted (actors.py looks there first).

`measured_peak` is not the ledger's own count: it is the bytes found on disk in the census's node cache, walked
after every download, under the lock."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tpa_dist.errors import DownloadError

log = logging.getLogger("tpa_dist")

LEDGER = "ledger.json"
LOCK = "ledger.lock"
WAIT_MIN_S, WAIT_MAX_S = 0.02, 0.5  # a waiting reservation looks again this often (backing off)


@dataclass(frozen=True)
class NodeBudget:
    """What the driver tells every worker: the budget, the census's node cache name and the run (an earlier run's
    leftovers are removed by the first reservation of a new one)."""

    limit: int  # bytes, on each node
    census: str  # the node cache's folder name: one per database (one writer per database)
    run_id: str


def census_name(host: str, db: str) -> str:
    """The folder name of a census's node cache: a digest of the driver's host and database path."""
    return "census-" + hashlib.sha256(f"{host}\0{os.path.abspath(db)}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class NodeFile:
    """One Hub file a task reads: `path` is where hf_hub_download puts it in the node cache."""

    repo_id: str
    revision: str
    filename: str
    path: str
    size: int


class BudgetExceeded(DownloadError):
    """The files one task reads are larger than the node's budget."""


def _overhead(ledger_bytes: int, new_files: int) -> int:
    """The ledger's own bytes on disk, counted in the budget too: the file and its next copy while it is replaced,
    with room for the entries about to be added."""
    return 2 * (ledger_bytes + 512 * new_files)


def size_text(nbytes: int) -> str:
    """A budget's bytes in words: GiB from one GiB, MiB below."""
    return f"{nbytes / 2**30:.2f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.2f} MiB"


def _alive(holder: str) -> bool:
    """Whether a holder (`host:pid:thread`) may still use its reservation: a process of this host that is gone
    may not; one of another host (a shared folder) is assumed to."""
    host, pid, _thread = holder.rsplit(":", 2)
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


def disk_bytes(root: Path) -> int:
    """Bytes of the regular files under `root` (links not followed), the ledger's own files left out."""
    total = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            if folder == str(root) and (name in (LEDGER, LOCK) or name.startswith(f".{LEDGER}.")):
                continue
            with contextlib.suppress(FileNotFoundError):
                st = os.lstat(os.path.join(folder, name))
                if not os.path.islink(os.path.join(folder, name)):
                    total += st.st_size
    return total


class NodeLedger:
    """The budget of one node's census cache (`root`), shared by the workers of that node through a file lock."""

    def __init__(self, budget: NodeBudget, root: Path) -> None:
        self.budget = budget
        self.root = root

    @property
    def holder(self) -> str:
        """Who holds a reservation: this process and thread (a GPU actor runs several batches at once)."""
        return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"

    # -- the ledger file -----------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / LOCK, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = self._read()
            yield state
            tmp = self.root / f".{LEDGER}.{os.getpid()}.tmp"
            tmp.write_text(json.dumps(state), encoding="utf-8")
            os.replace(tmp, self.root / LEDGER)

    def _read(self) -> dict:
        try:
            state = json.loads((self.root / LEDGER).read_text(encoding="utf-8"))
            ok = isinstance(state, dict) and state.get("run") == self.budget.run_id
            ok = ok and isinstance(state.get("files"), dict)
        except (OSError, ValueError):
            ok = False
        if not ok:  # an earlier run's leftovers (or none): this run's cache starts empty
            self._wipe()
            state = self._fresh()
        return state

    def _fresh(self) -> dict:
        return {"run": self.budget.run_id, "files": {}, "peak": 0, "measured_peak": 0, "fetched": 0}

    def _wipe(self) -> None:
        for entry in self.root.iterdir():
            if entry.name == LOCK:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)

    # -- reservations --------------------------------------------------------------------------------------------
    def reserve(self, files: list[NodeFile]) -> None:
        """Hold every file of `files` on this node: those not here yet are counted now (all or none), waiting while
        they do not fit; BudgetExceeded when they could never fit."""
        files = list({f.path: f for f in files}.values())
        total = sum(f.size for f in files)
        if total + _overhead(len(json.dumps(self._fresh())), len(files)) > self.budget.limit:
            what = files[0].filename if len(files) == 1 else " and ".join(f.filename for f in files)
            raise BudgetExceeded(
                f"{what} {'is' if len(files) == 1 else 'are together'} {size_text(total)}, larger than --max-cache-gib "
                f"{self.budget.limit / 2**30:g} ({size_text(self.budget.limit)}): "
                f"{'its' if len(files) == 1 else 'their'} matrices cannot be analyzed within the budget on a node"
            )
        wait = WAIT_MIN_S
        while not self._try_reserve(files):
            time.sleep(wait)
            wait = min(WAIT_MAX_S, wait * 2)

    def _try_reserve(self, files: list[NodeFile]) -> bool:
        with self._locked() as state:
            table = state["files"]
            self._drop_dead(table)
            need = sum(f.size for f in files if self._key(f) not in table)
            used = sum(e["size"] for e in table.values()) + _overhead(len(json.dumps(state)), len(files))
            idle = sorted((e["used_at"], k) for k, e in table.items() if not e["holders"] and e["ready"])
            mine = {self._key(f) for f in files}
            while used + need > self.budget.limit and idle:
                _, key = idle.pop(0)
                if key in mine:
                    continue
                used -= table.pop(key)["size"]
                self._delete(key, table)
            if used + need > self.budget.limit:
                return False
            now = time.time()
            for f in files:
                entry = table.setdefault(self._key(f), {"size": f.size, "holders": [], "ready": False})
                entry["holders"].append(self.holder)
                entry["used_at"] = now
            state["peak"] = max(state["peak"], sum(e["size"] for e in table.values()))
            return True

    def fetched(self, f: NodeFile, nbytes: int) -> None:
        """`f` is on disk: it is ready for the node's other holders, and the cache's bytes on disk are measured."""
        with self._locked() as state:
            entry = state["files"].get(self._key(f))
            if entry is not None and not entry["ready"]:
                entry["ready"] = True
                state["fetched"] += nbytes
            state["measured_peak"] = max(state["measured_peak"], disk_bytes(self.root))

    def release(self, files: list[NodeFile], failed: bool = False) -> None:
        """This holder is done with `files`; a file that never arrived and no one else holds is removed."""
        with self._locked() as state:
            table = state["files"]
            for f in {self._key(f) for f in files}:
                entry = table.get(f)
                if entry is None:
                    continue
                entry["holders"] = [h for h in entry["holders"] if h != self.holder]
                entry["used_at"] = time.time()
                if not entry["holders"] and (failed or not entry["ready"]):
                    table.pop(f)
                    self._delete(f, table)

    def finish(self) -> dict[str, int]:
        """The run's end on this node: every file no one holds is deleted (the cache folder too once empty); the
        node's peaks and bytes fetched."""
        with self._locked() as state:
            table = state["files"]
            self._drop_dead(table)
            for key in [k for k, e in table.items() if not e["holders"]]:
                table.pop(key)
                self._delete(key, table)
            report = {k: int(state[k]) for k in ("peak", "measured_peak", "fetched")}
            empty = not table
        if empty:
            shutil.rmtree(self.root, ignore_errors=True)
        return report

    # -- files ---------------------------------------------------------------------------------------------------
    def _key(self, f: NodeFile) -> str:
        return os.path.relpath(f.path, self.root)

    def _drop_dead(self, table: dict) -> None:
        """Reservations of worker processes that died: dropped, and their unfinished downloads removed."""
        for key, entry in list(table.items()):
            live = [h for h in entry["holders"] if _alive(h)]
            if live != entry["holders"]:
                entry["holders"] = live
                if not live and not entry["ready"]:
                    table.pop(key)
                    self._delete(key, table)

    def _delete(self, key: str, table: dict) -> None:
        """A file of the cache (`key`, out of `table` already): its snapshot link, the blob it points to, and — when
        it never arrived and no other file of its repo is being fetched — the repo's partial downloads."""
        path = self.root / key
        if not os.path.realpath(path).startswith(os.path.realpath(self.root) + os.sep):
            return
        target = Path(os.path.realpath(path))
        arrived = path.is_symlink() or path.exists()
        for p in (path, target):
            try:
                p.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("could not delete %s from the census's node cache: %s", p, exc)
        repo = Path(key).parts[0]
        if not arrived and not any(Path(k).parts[0] == repo and not e["ready"] for k, e in table.items()):
            for partial in (self.root / repo / "blobs").glob("*.incomplete"):
                partial.unlink(missing_ok=True)


__all__ = [
    "BudgetExceeded",
    "NodeBudget",
    "NodeFile",
    "NodeLedger",
    "census_name",
    "disk_bytes",
    "size_text",
]

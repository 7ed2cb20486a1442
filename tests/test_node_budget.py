"""A census's disk budget on one cluster node (sources/node_budget.py): the ledger its workers share, on its own —
all-or-nothing reservations, idle files evicted oldest first, a dead worker's reservation dropped, an earlier run's
leftovers removed. (The two-node run against the Hub emulator is tests/test_hub.py's.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tpa_dist.sources.node_budget import BudgetExceeded, NodeBudget, NodeFile, NodeLedger, disk_bytes

KIB = 1024


def _file(ledger: NodeLedger, name: str, size: int) -> NodeFile:
    path = ledger.root / "models--org--m" / "snapshots" / ("0" * 40) / name
    return NodeFile("org/m", "0" * 40, name, str(path), size)


def _arrive(ledger: NodeLedger, f: NodeFile) -> None:
    """What hf_hub_download leaves: a blob, and the snapshot's link to it."""
    blob = ledger.root / "models--org--m" / "blobs" / f.filename.replace(".", "-")
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(b"x" * f.size)
    Path(f.path).parent.mkdir(parents=True, exist_ok=True)
    os.symlink(blob, f.path)
    ledger.fetched(f, f.size)


def test_reservations_are_all_or_nothing_and_idle_files_make_room(tmp_path):
    ledger = NodeLedger(NodeBudget(100 * KIB, "c", "run-1"), tmp_path / "node")
    a, b, c = (_file(ledger, f"{n}.safetensors", 40 * KIB) for n in "abc")
    ledger.reserve([a, b])
    _arrive(ledger, a)
    _arrive(ledger, b)
    # another worker's two files: 80 KiB more than 80 held does not fit, so nothing of it is taken
    assert not ledger._try_reserve([c, _file(ledger, "d.safetensors", 40 * KIB)])
    assert set(ledger._read()["files"]) == {os.path.relpath(f.path, ledger.root) for f in (a, b)}
    ledger.release([a])  # a stays on disk, idle: the next reservation that needs room deletes it
    assert Path(a.path).exists()
    assert ledger._try_reserve([c])
    assert not Path(a.path).exists() and not os.path.lexists(a.path) and Path(b.path).exists()
    _arrive(ledger, c)
    ledger.release([c])
    ledger.release([b])
    assert ledger._try_reserve([b])  # b is on disk already: it costs nothing more, and it is not evicted
    assert Path(b.path).exists()
    state = ledger._read()
    assert state["peak"] == 80 * KIB and state["measured_peak"] == 80 * KIB and state["fetched"] == 120 * KIB
    with pytest.raises(BudgetExceeded, match=r"e.safetensors is 0.10 MiB, larger than --max-cache-gib"):
        ledger.reserve([_file(ledger, "e.safetensors", 101 * KIB)])
    ledger.release([b])
    report = ledger.finish()
    assert report == {"peak": 80 * KIB, "measured_peak": 80 * KIB, "fetched": 120 * KIB}
    assert not ledger.root.exists()  # emptied, and gone


def test_a_dead_workers_reservation_is_dropped_and_a_new_run_starts_empty(tmp_path):
    """A worker process SIGKILLed while it holds 90 of 100 KiB with its download unfinished: the next reservation
    finds its process gone, drops its hold and its partial file. A ledger of another run (an interrupted one's
    leftovers) is emptied by the new run's first look."""
    root = tmp_path / "node"
    holder = textwrap.dedent(
        f"""
        import sys, time
        from tpa_dist.sources.node_budget import NodeBudget, NodeFile, NodeLedger
        ledger = NodeLedger(NodeBudget(100 * 1024, "c", "run-1"), __import__("pathlib").Path({str(root)!r}))
        path = ledger.root / "models--org--m" / "snapshots" / ("0" * 40) / "big.safetensors"
        ledger.reserve([NodeFile("org/m", "0" * 40, "big.safetensors", str(path), 90 * 1024)])
        partial = ledger.root / "models--org--m" / "blobs" / "etag.incomplete"
        partial.parent.mkdir(parents=True)
        partial.write_bytes(b"x" * 1000)
        print("held", flush=True)
        time.sleep(600)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        ledger = NodeLedger(NodeBudget(100 * KIB, "c", "run-1"), root)
        small = _file(ledger, "small.safetensors", 20 * KIB)
        assert not ledger._try_reserve([small])  # alive: its 90 KiB are its own
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert ledger._try_reserve([small])
    assert not (root / "models--org--m" / "blobs" / "etag.incomplete").exists()
    _arrive(ledger, small)
    assert disk_bytes(root) == 20 * KIB
    later = NodeLedger(NodeBudget(100 * KIB, "c", "run-2"), root)  # the next run, on the same node
    assert later._read()["files"] == {} and disk_bytes(root) == 0

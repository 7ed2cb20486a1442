"""Faults: a full disk while writing, Ctrl-C, a second writer, denormal values — each with a clear message
and nothing else lost."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest
import scipy.linalg as sl
import torch
from safetensors.torch import save_file

from tpa_dist.checkpoint.catalog import open_model
from tpa_dist.compute.spectrum import matrix_spectrum
from tpa_dist.compute.tasks import tasks_for_tensor
from tpa_dist.errors import StoreError, StoreLockedError
from tpa_dist.jobs import Job
from tpa_dist.run.driver import submit

from .conftest import quiet_job, start_slow_submit, wait_until_stored
from .test_spectrum import _assert_spectrum_close

FILL = r"""
import resource, signal, sys, numpy as np
from tpa_dist.db.store import Store
from tpa_dist.errors import StoreError
from tpa_dist.compute.rows import MatrixRow
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)       # a full disk: writes fail with EFBIG, no signal
store = Store(sys.argv[1])
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
rows_per_batch = 50
try:
    for b in range(100000):
        rows = [MatrixRow("m", "r", f"b{b}-{i}", f"b{b}", None, None, "other", "matrix", "(1, 1)", 1, 1, 1, "F32",
                          "s", 4) for i in range(rows_per_batch)]
        spectra = [(r, np.random.default_rng(b).random(512)) for r in rows]
        store.write_batch(rows, spectra, {"settings_id": "s", "run_id": f"batch{b}"})
except StoreError as exc:
    print("STOREERROR", exc)
    sys.exit(3)
"""


def test_a_batch_with_stored_matrices_replaces_them_and_appends_the_rest(tmp_path):
    """Batches are appended (plain INSERTs); one that meets a stored matrix (--force, an error row run again) is rolled
    back and written again as a replacement: the stored row and its spectrum become the new ones, the new matrix is
    added, nothing is doubled — matrix batches and ΔW batches alike."""
    import duckdb
    import numpy as np

    from tpa_dist.compute.rows import DeltaRow, MatrixRow
    from tpa_dist.db.store import Store

    def row(key: str, rank: int) -> MatrixRow:
        r = MatrixRow("m", "r", key, key, None, 0, "q_proj", "matrix", "(8, 4)", 8, 4, 32, "F32", "s", 128)
        r.update(design_rank=4, energy_rank_90=rank)
        return r

    store = Store(tmp_path / "r.duckdb")
    first = [row("a", 1), row("b", 2)]
    store.write_batch(first, [(r, np.full(4, 1.0)) for r in first], {"settings_id": "s", "run_id": "r1"})
    again = [row("b", 3), row("c", 4)]
    store.write_batch(again, [(r, np.full(4, 2.0)) for r in again], {"settings_id": "s", "run_id": "r2"})
    store.close()
    con = duckdb.connect(str(tmp_path / "r.duckdb"), read_only=True)
    got = con.execute("SELECT matrix_key, energy_rank_90, run_id FROM matrix_analysis ORDER BY 1").fetchall()
    spectra = con.execute("SELECT matrix_key, singular_values[1] FROM spectra ORDER BY 1").fetchall()
    con.close()
    assert got == [("a", 1, "r1"), ("b", 3, "r2"), ("c", 4, "r2")]
    assert spectra == [("a", 1.0), ("b", 2.0), ("c", 2.0)]

    def delta(key: str, rank: int) -> DeltaRow:  # ΔW batches the same way
        d = DeltaRow("m", "r", "base", "r0", key, key, None, 0, "q_proj", "(8, 4)", 8, 4, "F32", "F32")
        d.update(actual_rank=rank)
        return d

    store = Store(tmp_path / "r.duckdb")
    for batch, run in (([delta("a", 1), delta("b", 2)], "r1"), ([delta("b", 3), delta("c", 4)], "r2")):
        store.write_deltas(batch, [(d, np.full(4, 1.0)) for d in batch], {"settings_id": "s", "run_id": run})
    store.close()
    con = duckdb.connect(str(tmp_path / "r.duckdb"), read_only=True)
    got = con.execute("SELECT matrix_key, actual_rank, run_id FROM delta_analysis ORDER BY 1").fetchall()
    assert got == [("a", 1, "r1"), ("b", 3, "r2"), ("c", 4, "r2")]
    assert con.execute("SELECT count(*) FROM delta_spectra").fetchone() == (3,)
    con.close()


def test_disk_full_while_writing_keeps_database_whole(tmp_path):
    db = tmp_path / "full.duckdb"
    from tpa_dist.db.store import Store

    Store(db).close()  # schema in place before the limit
    size = db.stat().st_size
    proc = subprocess.run(
        [sys.executable, "-c", FILL, str(db), str(size + 3_000_000)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr[-3000:]
    assert "write failed and was rolled back" in proc.stdout and "Is the disk full?" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    con = duckdb.connect(str(db), read_only=True)  # the database opens after the failure
    counts = con.execute("SELECT run_id, count(*) FROM matrix_analysis GROUP BY 1").fetchall()
    spectra = con.execute("SELECT count(*) FROM spectra").fetchone()[0]
    con.close()
    assert counts and all(n == 50 for _, n in counts)  # only whole batches
    assert spectra == 50 * len(counts)  # rows and spectra of a batch land together


def test_ctrl_c_stops_cleanly_keeps_results_and_says_how_to_resume(ray_session, tmp_path):
    db = tmp_path / "int.duckdb"
    hold = {"TPA_DIST_INJECT_HOLD": "model.norm.weight", "TPA_DIST_INJECT_HOLD_UNTIL": str(tmp_path / "never")}
    proc = start_slow_submit(
        db, tmp_path / "out", extra_env=hold, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert wait_until_stored(db, 5, timeout=600) >= 5  # the last task is held: the run cannot end first
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err[-3000:]
    assert "interrupted: every stored batch is kept; run the same submit again to resume" in err
    assert "Traceback" not in err
    con = duckdb.connect(str(db), read_only=True)
    stored = con.execute("SELECT count(*) FROM matrix_analysis").fetchone()[0]
    status = con.execute("SELECT status FROM runs").fetchall()
    con.close()
    assert 5 <= stored < 41 and status == [("interrupted",)]
    resumed = submit(quiet_job(db, ("synth:tiny-mixtral",), tmp_path / "out", embedding=False))
    assert resumed.ok and resumed.reused == stored and resumed.done == 41 - stored


linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; fate-sharing is Linux's")


def _children(pid: int) -> list[int]:
    """Live (not zombie) processes whose parent is `pid`, from /proc."""
    from pathlib import Path

    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and (state := _proc_state(int(d.name))) and state[1] == pid and state[0] != "Z":
            found.append(int(d.name))
    return found


def _proc_state(pid: int) -> tuple[str, int] | None:
    """(state letter, parent pid) of a process, None once it is gone."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return fields[0], int(fields[1])


def _all_gone(pids: list[int], timeout: float = 60) -> list[int]:
    """The processes of `pids` still alive (not gone, not zombie) after waiting up to `timeout` for them to exit."""
    import time

    deadline = time.monotonic() + timeout
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if (st := _proc_state(p)) and st[0] != "Z"]
        time.sleep(0.05)
    return alive


@linux_only
def test_sigterm_stops_like_ctrl_c_and_no_worker_outlives_it(tmp_path):
    """`kill PID` (SIGTERM, as a batch system's time limit sends) to the driver alone: the run ends `interrupted`
    with its batches kept, exit status 143, and the local pool's workers (one held mid-task) end with it."""
    db = tmp_path / "term.duckdb"
    hold = {"TPA_DIST_INJECT_HOLD": "model.norm.weight", "TPA_DIST_INJECT_HOLD_UNTIL": str(tmp_path / "never")}
    proc = start_slow_submit(
        db, tmp_path / "out", extra_env=hold, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert wait_until_stored(db, 5, timeout=600) >= 5
    workers = _children(proc.pid)
    assert workers, "the small local job runs on forked workers"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, out + err[-3000:]
    assert "interrupted by SIGTERM: every stored batch is kept; run the same submit again to resume" in err
    assert "Traceback" not in err
    assert _all_gone(workers) == []
    con = duckdb.connect(str(db), read_only=True)
    stored = con.execute("SELECT count(*) FROM matrix_analysis").fetchone()[0]
    status = con.execute("SELECT status FROM runs").fetchall()
    con.close()
    assert 5 <= stored < 41 and status == [("interrupted",)]


@linux_only
def test_workers_die_with_a_killed_driver(tmp_path):
    """SIGKILL to the driver alone (no clean-up can run): the kernel ends its local workers, as Ray does for its
    own processes, instead of leaving one held mid-task forever."""
    db = tmp_path / "kill1.duckdb"
    hold = {"TPA_DIST_INJECT_HOLD": "model.norm.weight", "TPA_DIST_INJECT_HOLD_UNTIL": str(tmp_path / "never")}
    proc = start_slow_submit(db, tmp_path / "out", extra_env=hold, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_until_stored(db, 5, timeout=600) >= 5
    workers = _children(proc.pid)
    assert workers
    proc.kill()
    proc.wait()
    assert _all_gone(workers) == []


def test_second_writer_gets_a_clear_message(tmp_path):
    db = tmp_path / "locked.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ready', flush=True); time.sleep(60)",
            str(db),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreLockedError, match="locked by another process"):
            submit(quiet_job(db, ("synth:tiny-gpt2",), tmp_path / "o"))
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_denormal_values_are_analyzed_exactly(tmp_path, dtype):
    tiny = torch.finfo(dtype).tiny  # smallest normal; values below are subnormal
    rng = np.random.default_rng(4)
    w = (torch.from_numpy(rng.standard_normal((24, 16))) * tiny / 8).to(dtype)
    assert (w.abs() < tiny).float().mean() > 0.9
    save_file({"w": w}, str(tmp_path / "model.safetensors"))
    (info,) = open_model(tmp_path).tensors()
    (task,) = tasks_for_tensor("m", "r", info)
    res = matrix_spectrum(task.region)
    _assert_spectrum_close(res.singular_values, sl.svdvals(w.double().numpy()))
    assert res.singular_values[0] > 0


def _big_two_shard_repo(folder) -> None:
    """A 2-shard model: two small matrices in shard 1, a 16 MiB one in shard 2."""
    import json

    from .conftest import write_safetensors

    folder.mkdir()
    rng = np.random.default_rng(0)
    small = {
        f"model.layers.0.mlp.{p}.weight": ("F32", rng.standard_normal((64, 48)).astype("<f4"), (64, 48))
        for p in ("gate_proj", "up_proj")
    }
    write_safetensors(folder / "model-00001-of-00002.safetensors", small)
    large = {
        "model.layers.1.mlp.down_proj.weight": ("F32", rng.standard_normal((4096, 1024)).astype("<f4"), (4096, 1024))
    }
    write_safetensors(folder / "model-00002-of-00002.safetensors", large)
    weight_map = {
        **dict.fromkeys(small, "model-00001-of-00002.safetensors"),
        **dict.fromkeys(large, "model-00002-of-00002.safetensors"),
    }
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))


@contextlib.contextmanager
def _disk_of(nbytes: int):
    """A disk with `nbytes` left, for this process: a file-size limit, writes past it failing with EFBIG."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old)


def test_disk_full_while_downloading_keeps_the_rest(ray_session, synth_models, tmp_path, monkeypatch):
    """A shard larger than the space left (a file-size limit on the driver) fails with a clear message; the
    other model and the shards that arrived are analyzed; the next submit, with space, completes the model."""
    import shutil

    from .hub_emulator import HubEmulator

    big = tmp_path / "big"
    _big_two_shard_repo(big)
    ok_repo = tmp_path / "ok"
    shutil.copytree(synth_models["tiny-gpt2"], ok_repo)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    db = tmp_path / "dl.duckdb"
    job = quiet_job(db, ("org/big", "org/ok"), tmp_path / "o", embedding=False)
    with HubEmulator({"org/big": big, "org/ok": ok_repo}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        with _disk_of(8 << 20):  # 16 MiB shard, 8 MiB "disk"
            full = submit(job)
        failures = "\n".join(full.failures)
        assert "disk full while downloading org/big/model-00002-of-00002.safetensors" in failures
        assert "run the same submit again" in failures and len(full.failures) == 1, failures
        con = duckdb.connect(str(db), read_only=True)
        rows = dict(
            con.execute("SELECT model_id || ':' || status, count(*) FROM matrix_analysis GROUP BY 1").fetchall()
        )
        err = con.execute("SELECT error FROM matrix_analysis WHERE status = 'error'").fetchone()[0]
        ok_spectra = con.execute("SELECT count(*) FROM spectra").fetchone()[0]
        con.close()
        n_ok = sum(1 for _ in open_model(ok_repo).tensors())
        assert rows["org/big:ok"] == 2 and rows["org/big:error"] == 1 and rows["org/ok:ok"] == n_ok, rows
        assert "disk full while downloading" in err
        assert ok_spectra >= 2 + 1  # the stored rows came whole, with their spectra
        again = submit(job)
    assert again.ok, again.describe()
    assert again.reused == 2 + n_ok and again.done == 1
    con = duckdb.connect(str(db), read_only=True)
    statuses = con.execute(
        "SELECT status, count(*) FROM matrix_analysis WHERE model_id = 'org/big' GROUP BY 1"
    ).fetchall()
    con.close()
    assert statuses == [("ok", 3)]  # the error row was replaced, nothing duplicated


def _whole_batches(db) -> tuple[int, int]:
    """(stored rows, distinct keys) after checking that every stored matrix row has its spectrum and vice versa."""
    con = duckdb.connect(str(db), read_only=True)  # opens after a SIGKILL
    rows, keys = con.execute("SELECT count(*), count(DISTINCT matrix_key) FROM matrix_analysis").fetchone()
    orphans = con.execute(
        "SELECT (SELECT count(*) FROM matrix_analysis a WHERE a.kind = 'matrix' AND a.status = 'ok' AND NOT EXISTS "
        "(SELECT 1 FROM spectra s WHERE s.matrix_key = a.matrix_key)) + (SELECT count(*) FROM spectra s WHERE NOT "
        "EXISTS (SELECT 1 FROM matrix_analysis a WHERE a.matrix_key = s.matrix_key))"
    ).fetchone()[0]
    con.close()
    assert orphans == 0, "a batch was half-written"
    return rows, keys


def test_driver_killed_at_random_points_while_writing(ray_session, tmp_path):
    """SIGKILL at random moments inside open write transactions (each write held open for 0.4 s by fault
    injection): the database opens with whole batches only, and the next submit completes without duplicates."""
    import os
    import random
    import time

    seed = int(os.environ.get("TPA_DIST_TEST_SEED", time.time_ns() % 2**31))
    rng = random.Random(seed)
    db = tmp_path / "kill.duckdb"
    marker = tmp_path / "kill.duckdb.writing"
    mid_write = 0
    for cycle in range(3):
        proc = start_slow_submit(
            db,
            tmp_path / "out",
            {"TPA_DIST_INJECT_WRITE_PAUSE_S": "0.4"},
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.0, 4.0))  # a random moment, then the next write in progress
        deadline = time.monotonic() + 120
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if proc.poll() is None:
            time.sleep(rng.uniform(0.0, 0.35))  # a random point inside the open transaction
            mid_write += marker.exists()
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        marker.unlink(missing_ok=True)
        rows, keys = _whole_batches(db)
        assert rows == keys <= 41, f"seed {seed}, cycle {cycle}: duplicates or too many rows"
    assert mid_write >= 2, f"seed {seed}: only {mid_write} kill(s) landed inside a write"
    stored, _ = _whole_batches(db)
    resumed = submit(quiet_job(db, ("synth:tiny-mixtral",), tmp_path / "o", embedding=False))
    assert resumed.ok and resumed.reused == stored and resumed.done == 41 - stored, f"seed {seed}"
    assert _whole_batches(db) == (41, 41)


def test_disk_full_in_the_download_command_is_named(tmp_path, monkeypatch):
    """`tpa-dist download` (snapshot_download, parallel files) on a disk that fills up: DiskSpaceError naming the
    repo and the folder, after no retries; with space, the same call completes (the partial file resumes)."""
    from tpa_dist.errors import DiskSpaceError
    from tpa_dist.sources.resolve import download

    from .hub_emulator import HubEmulator

    big = tmp_path / "big"
    _big_two_shard_repo(big)
    out = tmp_path / "plain"
    monkeypatch.setenv(
        "HF_HUB_CACHE", str(tmp_path / "hf-cache")
    )  # a model cached earlier would be copied, not fetched
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with HubEmulator({"org/big": big}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        with _disk_of(8 << 20), pytest.raises(DiskSpaceError, match=rf"disk full while downloading org/big into {out}"):
            download("org/big", out=out)
        gets = [p for m, p, _, r in hub.log if m == "GET" and p.endswith("model-00002-of-00002.safetensors")]
        assert len(gets) == 1  # a full disk is not retried
        source = download("org/big", out=out)
    assert (source.path / "model-00002-of-00002.safetensors").stat().st_size == (
        big / "model-00002-of-00002.safetensors"
    ).stat().st_size


def test_ctrl_c_inside_a_database_call_still_interrupts(tmp_path, monkeypatch):
    """DuckDB turns a SIGINT that lands inside its call into "Query interrupted" (a RuntimeError): the store gives
    it back as KeyboardInterrupt, so a run stops as interrupted instead of failing (or running on)."""
    import duckdb
    import pytest

    from tpa_dist.compute.rows import MatrixRow
    from tpa_dist.db.store import Store

    store = Store(tmp_path / "i.duckdb")
    real = store.con

    class Interrupting:  # the connection as DuckDB leaves it when a SIGINT arrives mid-query
        def __getattr__(self, name):  # noqa: ANN001, ANN204
            return getattr(real, name)

        def execute(self, query, *args):  # noqa: ANN001, ANN201
            if query.lstrip().upper().startswith("INSERT"):
                raise RuntimeError("Query interrupted")
            return real.execute(query, *args)

    store.con = Interrupting()
    row = MatrixRow("m", "r", "k", "k", None, 0, "q_proj", "matrix", "(1, 1)", 1, 1, 1, "F32", "s", 4)
    with pytest.raises(KeyboardInterrupt):
        store.write_batch([row], [], {"settings_id": "s", "run_id": "r"})
    store.con = real
    store.close()
    con = duckdb.connect(str(tmp_path / "i.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM matrix_analysis").fetchone() == (0,)  # rolled back, nothing half-written
    con.close()


def test_a_swallowed_ctrl_c_still_stops_the_run():
    """A library that catches the KeyboardInterrupt of a Ctrl-C (DuckDB's client can, mid-scan) does not lose it:
    the submit's handler records it and the executor loops check the record."""
    import signal as sig

    from tpa_dist import interrupts

    outer = sig.signal(sig.SIGINT, sig.default_int_handler)  # as in a terminal (a background test run ignores it)
    try:
        _swallow_and_check(interrupts)
    finally:
        sig.signal(sig.SIGINT, outer)


def _swallow_and_check(interrupts) -> None:  # noqa: ANN001
    import os
    import signal as sig

    import pytest

    with interrupts.recorded():
        try:
            os.kill(os.getpid(), sig.SIGINT)
            for _ in range(1000):  # the handler runs at the next bytecode boundaries
                pass
        except KeyboardInterrupt:
            pass  # swallowed, as a library might
        with pytest.raises(KeyboardInterrupt):
            interrupts.check()
    assert sig.getsignal(sig.SIGINT) is sig.default_int_handler  # the previous handler is back


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        kids = _children(todo.pop())
        out += kids
        todo += kids
    return out


@linux_only
@pytest.mark.parametrize(
    "phase,stop",
    [
        ("plan", signal.SIGTERM),
        ("analysis", signal.SIGINT),
        ("embedding", signal.SIGTERM),
        ("report", signal.SIGINT),
        ("figures", signal.SIGTERM),
        ("figures", signal.SIGKILL),
    ],
)
def test_a_stop_in_every_phase_ends_the_run_at_once_and_leaves_no_process(tmp_path, phase, stop):
    """Ctrl-C or SIGTERM in each phase of a submit — planning, analysis, embedding, the report's queries, the figures
    being drawn in forked children — ends it within seconds, recorded `interrupted` (the red team's SIGTERM while
    figures were drawn hung 15 minutes waiting on the drawing children); SIGKILL of the driver takes its children
    along. The run is held at the phase by an injected pause (in the drawing children themselves for `figures`)."""
    import time

    db, release = tmp_path / "p.duckdb", tmp_path / "never"
    env = dict(
        os.environ,
        TPA_DIST_INJECT_PAUSE_PHASE=phase,
        TPA_DIST_INJECT_PAUSE_UNTIL=str(release),
        RAY_AUTH_MODE="disabled",
    )
    cmd = [sys.executable, "-m", "tpa_dist", "submit", "--models", "synth:tiny-gpt2", "--db", str(db)]
    cmd += ["--output-dir", str(tmp_path / "out"), "--no-progress", "--quiet", "--k-range", "2:4"]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=_default_sigint
    )
    paused = Path(f"{db}.paused")
    deadline = time.monotonic() + 600
    while not paused.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert paused.exists() and paused.read_text() == phase, proc.communicate()[0] if proc.poll() is not None else ""
    family = _descendants(proc.pid)
    if phase == "embedding":  # `status` says what the run does now (was "21/21 ... ETA 0s" for the whole phase)
        shown = subprocess.run(
            [sys.executable, "-m", "tpa_dist", "status", "--db", str(db)], capture_output=True, text=True, timeout=120
        )
        assert "matrices done, now embeddings 1/1: synth:tiny-gpt2" in shown.stdout, shown.stdout + shown.stderr
    if phase == "plan":  # from its first second a run is seen: `status`, and a second writer's lock message
        shown = subprocess.run(
            [sys.executable, "-m", "tpa_dist", "status", "--db", str(db)], capture_output=True, text=True, timeout=120
        )
        assert "now planning" in shown.stdout and "no progress published" not in shown.stdout, shown.stdout
        second = subprocess.run(
            [*cmd[:-2], "--no-report"], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path
        )
        assert second.returncode == 2 and "a running `tpa-dist submit`" in second.stderr, second.stderr
        assert "tpa-dist sql" not in second.stderr, second.stderr
    if phase == "figures":
        assert family, "the figures are drawn in forked children"
    t0 = time.monotonic()
    proc.send_signal(stop)
    out, _ = proc.communicate(timeout=120)
    took = time.monotonic() - t0
    assert _all_gone(family, timeout=30) == [], f"left behind: {family}"
    if stop == signal.SIGKILL:
        return
    assert took < 10, (took, out)
    assert proc.returncode == 128 + stop, out
    assert "Traceback" not in out and "interrupted" in out, out
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT status FROM runs").fetchall() == [("interrupted",)]
    (summary,) = con.execute("SELECT summary FROM runs").fetchone()
    con.close()
    assert "0 failed and 1 other problem(s)" in summary or phase != "plan", summary  # not "1 failed"


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_database_deleted_or_replaced_during_a_submit_fails_the_run_loudly(tmp_path, how):
    """Before, the run printed '21/21 analyzed' into the unlinked file and a new empty database appeared."""
    db, release = tmp_path / "gone.duckdb", tmp_path / "release"
    hold = {"TPA_DIST_INJECT_HOLD": "model.norm.weight", "TPA_DIST_INJECT_HOLD_UNTIL": str(release)}
    proc = start_slow_submit(db, tmp_path / "out", hold, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert wait_until_stored(db, 5, timeout=600) >= 5
    db.unlink()
    if how == "replaced":
        db.write_bytes(b"")  # another file at the path
    release.touch()
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode != 0, out
    assert f"was {how}" in out and "Traceback" not in out, out
    assert (not db.exists()) if how == "deleted" else db.stat().st_size == 0  # nothing new written there


def test_empty_and_damaged_database_files_are_named_with_the_fix(tmp_path):
    empty = tmp_path / "empty.duckdb"
    empty.write_bytes(b"")
    job = quiet_job(empty, ("synth:tiny-gpt2",), tmp_path / "o")
    with pytest.raises(StoreError, match=r"is empty \(0 bytes\), not a database: .*delete it"):
        submit(job)
    damaged = tmp_path / "damaged.duckdb"
    damaged.write_bytes(os.urandom(1 << 16))
    with pytest.raises(StoreError) as info:
        submit(quiet_job(damaged, ("synth:tiny-gpt2",), tmp_path / "o"))
    assert "damaged or not a DuckDB database: move it away" in str(info.value)
    assert "disk full" not in str(info.value).lower()


@linux_only
def test_a_database_that_cannot_be_created_leaves_no_empty_file(tmp_path):
    """A full filesystem (here a file-size limit of 0 bytes) when the database is created: the error says so, and
    no 0-byte file is left for every later submit to trip over."""
    db = tmp_path / "full.duckdb"
    code = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY)); "
        "import signal; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); from tpa_dist.db.store import Store; "
        "from tpa_dist.errors import StoreError\n"
        "try:\n    Store(sys.argv[1])\nexcept StoreError as e:\n    print('error:', e)"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(db)], capture_output=True, text=True, timeout=120)
    assert "error:" in proc.stdout and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    assert not db.exists() and not Path(f"{db}.wal").exists()


def test_a_foreign_writer_is_not_blamed_on_a_submit(tmp_path):
    db = tmp_path / "held.duckdb"
    from tpa_dist.db.store import Store as _Store

    _Store(db).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb,sys,time; c=duckdb.connect(sys.argv[1]); print('ready', flush=True); time.sleep(60)",
            str(db),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreLockedError) as info:
            submit(quiet_job(db, ("synth:tiny-gpt2",), tmp_path / "o"))
    finally:
        holder.kill()
        holder.wait()
    assert "another DuckDB client holds it" in str(info.value) and "a running `tpa-dist submit`" not in str(info.value)


@linux_only
def test_out_of_memory_names_the_matrix_and_the_advice(tmp_path):
    """Under a memory limit (`ulimit -v`) the red team saw `BufferError: cannot close exported pointers exist` (the
    MemoryError hidden by closing the mapping) or raw tracebacks: the row now says out of memory, with the matrix,
    what it needs and the --block-mib advice."""
    from .conftest import write_safetensors

    rng = np.random.default_rng(0)
    write_safetensors(
        tmp_path / "model.safetensors",
        {"big.weight": ("F32", rng.standard_normal((3000, 3000)).astype(np.float32), (3000, 3000))},
    )
    code = """
import resource, sys
from pathlib import Path
from tpa_dist.compute.analysis import analyze_task
from tpa_dist.checkpoint.catalog import open_model
from tpa_dist.compute.tasks import plan_tasks
cat = open_model(Path(sys.argv[1]))
(task,) = plan_tasks("m", "r", cat.tensors(), cat.config)
size = int(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmSize:"))) << 10
resource.setrlimit(resource.RLIMIT_AS, (size + (40 << 20), resource.RLIM_INFINITY))  # less than its 72 MB Gram
row, sv = analyze_task(task, block_bytes=8 << 20)
print("STATUS", row.status)
print("ERROR", row.error)
"""
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert "STATUS error" in proc.stdout, proc.stdout + proc.stderr[-2000:]
    error = proc.stdout.split("ERROR ", 1)[1]
    assert error.startswith(
        "tensor big.weight: out of memory analyzing this 3000×3000 F32 matrix (its Gram needs 69 MiB"
    )
    assert "lower --block-mib" in error and "BufferError" not in error


def test_model_names_are_never_paths():
    from tpa_dist.files import name_for_path

    assert (
        name_for_path("synth:tiny-llama") == "synth-tiny-llama" and name_for_path("Qwen/Qwen3-4B") == "Qwen--Qwen3-4B"
    )
    for hostile in ("..", ".", "../x", "/etc", ".hidden", "a\x00b", "x" * 500, "", "m<script>"):
        name = name_for_path(hostile)
        assert name not in (".", "..") and "/" not in name and not name.startswith(".") and len(name) <= 100, name
        assert set(name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"), name
    assert name_for_path("org/name") != name_for_path("org--name-x") and name_for_path("a:b") != name_for_path("a/b")


def test_per_model_files_stay_inside_the_output_dir_and_are_rewritten_when_missing(tmp_path, synth_models):
    """`--models '..=PATH'` wrote the per-model files one folder above --output-dir; a full disk left a 0-byte
    clustering_results.json that no later run replaced. Files are made from the stored rows, whole, and rewritten
    by the next run when missing — even though nothing is recomputed then."""
    out = tmp_path / "out"
    job = Job.create(
        models=(f"..={synth_models['tiny-gpt2']}",),
        db=str(tmp_path / "f.duckdb"),
        output_dir=str(out),
        progress=False,
        k_min=2,
        k_max=4,
    )
    first = submit(job)
    assert first.ok, first.describe()
    (folder,) = [p for p in out.iterdir() if p.is_dir()]
    assert folder.parent == out and folder.name.startswith("model-")
    assert not (tmp_path / "clustering_results.json").exists()
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(
        [
            "anova_curve.png",
            "cluster_representatives.json",
            "clustering_results.json",
            "embedding_projection.png",
            f"{folder.name}_embedding.csv",
        ]
    )
    written = json.loads((folder / "clustering_results.json").read_text())
    (folder / "clustering_results.json").unlink()
    second = submit(job)
    assert second.ok and second.done == 0  # everything reused ...
    assert json.loads((folder / "clustering_results.json").read_text()) == written  # ... and the files written again


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{",
        b"[]",
        b'{"run_id": 1}',
        b'{"run_id": "r", "pid": true, "updated": 0, "total": 1, "done": 0, "reused": 0, "failed": 0, "bytes": 0}',
        b'{"x": 1}',
        b"\xff\xfe",
        b"[" * 100_000,
    ],
)
def test_a_hostile_progress_file_is_no_progress(tmp_path, content):
    """`status` and lock messages read `DB.progress.json` — any content, of any shape, is simply no progress."""
    from tpa_dist.db.live import LiveProgress, live_progress, live_progress_path

    db = tmp_path / "x.duckdb"
    live_progress_path(db).write_bytes(content)
    assert live_progress(db) is None
    good = LiveProgress("r", os.getpid(), 0.0, 10, 4, 1, 0, 1 << 20, 1.0, {"cpu": 4}, 2.0)
    live_progress_path(db).write_text(json.dumps(good.__dict__))
    assert live_progress(db) == good and good.alive and "5/10 matrices" in good.describe()

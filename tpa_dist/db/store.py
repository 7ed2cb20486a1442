"""The DuckDB store: schema, the driver's single-writer connection, and transactional batch writes."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from tpa_dist.checkpoint.catalog import TensorInfo
from tpa_dist.compute.rows import (
    DELTA_COLUMNS,
    DELTA_STAMPED,
    MATRIX_COLUMNS,
    MODEL_COLUMNS,
    RMT_COLUMNS,
    STAMPED,
    DeltaRow,
    MatrixRow,
    ModelRecord,
)
from tpa_dist.db.live import live_progress
from tpa_dist.db.sqlfiles import sql_text, statements
from tpa_dist.errors import StoreError, StoreLockedError
from tpa_dist.faults import NO_FAULTS, Faults
from tpa_dist.sources.cohort import Cohort, Member


class _PandasWithheld:
    """An import finder that refuses pandas (see _arrow_without_pandas)."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError("pandas withheld from pyarrow's first look", name=name)


def _arrow_without_pandas() -> None:
    """pyarrow, on its first conversion of Python objects, imports pandas (0.4 s, on a run's critical path) only to ask
    whether they are pandas objects; none of ours ever is. That one look is made here with pandas withheld, so
    pyarrow's shim records it as absent; pandas stays importable by anyone who imports it (pyarrow's explicit
    pandas functions included)."""
    import sys

    if "pandas" in sys.modules:
        return
    finder = _PandasWithheld()
    sys.meta_path.insert(0, finder)
    try:
        pa.array([0])
    finally:
        sys.meta_path.remove(finder)


_arrow_without_pandas()

#: DuckDB settings of every connection that runs SQL a user wrote (`tpa-dist sql`, report sections): the database
#: file and nothing else — no ATTACH/COPY/EXPORT/INSTALL or file-reading functions, and no SET that undoes this.
SANDBOX = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "lock_configuration": True,
}
#: the seed tool's names of energy_rank_90 and its ratio: generated (virtual) columns of matrix_analysis
SEED_ALIASES = ("svd_90_percent_rank", "svd_90_percent_ratio")
#: the tables every tpa-dist database has; a DuckDB file with other tables and not these belongs to someone else
OWN_TABLES = {"runs", "models", "matrix_analysis", "spectra"}


def connect_db(
    path: str | Path, read_only: bool = False, sandbox: bool = False, memory_mib: int | None = None
) -> duckdb.DuckDBPyConnection:
    """Open a tpa-dist database; a lock held by another process becomes StoreLockedError with advice, a DuckDB
    file of another application is refused before anything is written to it. `sandbox`: see SANDBOX;
    `memory_mib`: DuckDB's memory_limit."""
    path = Path(path)
    if read_only and not path.exists():
        raise StoreError(f"{path}: no such database (run `tpa-dist submit` first)")
    if path.exists() and not path.is_file():
        raise StoreError(f"{path}: not a database file (a folder or special file); choose another --db")
    if path.is_file() and path.stat().st_size == 0 and not Path(f"{path}.wal").exists():
        raise StoreError(
            f"{path} is empty (0 bytes), not a database: a run that could not create it (a full disk?) left it. "
            f"It holds nothing: delete it (rm {path}) and run again"
        )
    created = not read_only and not path.exists()
    if not read_only:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{path.parent}: cannot create the database folder: {exc.strerror or exc}") from None
    try:
        config: dict[str, object] = dict(SANDBOX) if sandbox else {}
        if memory_mib is not None:
            config["memory_limit"] = f"{memory_mib}MiB"
        con = duckdb.connect(str(path), read_only=read_only, config=config)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise StoreLockedError(_locked_message(path)) from None
        if created:
            _remove_new(path)
        raise StoreError(f"{path}: cannot open database: {_cause(exc)}") from None
    except duckdb.Error as exc:
        if created:
            _remove_new(path)
        raise StoreError(f"{path}: cannot open database: {_cause(exc)}") from None
    try:
        _check_ours(con, path)
    except StoreError:
        con.close()
        raise
    return con


def _locked_message(path: Path) -> str:
    """Who holds the lock: a tpa-dist submit (its live progress says so), or another DuckDB client."""
    doc = live_progress(path)
    if doc is not None and doc.alive:
        return (
            f"{path} is locked by another process: a running `tpa-dist submit` (the single writer; results become "
            f"readable when it finishes). In flight: {doc.describe()}. `tpa-dist status --db {path}` shows "
            "progress."
        )
    return (
        f"{path} is locked by another process — another DuckDB client holds it (a `tpa-dist sql` or report still "
        f"running, or another program; `lsof {path}` shows which). Try again when it has closed the file."
    )


def _cause(exc: BaseException) -> str:
    """DuckDB's message, first line, with what it means when it says the file is damaged or the disk full."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    low = str(exc).lower()
    if "no space left" in low or "disk full" in low:
        return f"{first} — the disk is full: free space and run again"
    if _damaged(exc):
        return f"{first} — the file is damaged or not a DuckDB database: move it away (or restore a copy) and run again"
    return first


def _damaged(exc: BaseException) -> bool:
    low = str(exc).lower()
    return any(w in low for w in ("not a valid duckdb", "corrupt", "checksum", "invalid database", "magic bytes"))


def _remove_new(path: Path) -> None:
    """Remove a database file this process just failed to create (a full disk leaves 0 bytes behind)."""
    for p in (path, Path(f"{path}.wal")):
        try:
            if p.is_file() and p.stat().st_size == 0:
                p.unlink()
        except OSError:
            pass


def _check_ours(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    tables = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
        ).fetchall()
    }
    if tables and not OWN_TABLES <= tables:
        shown = ", ".join(sorted(tables)[:5]) + (" …" if len(tables) > 5 else "")
        raise StoreError(
            f"{path} is a DuckDB database of another application (tables: {shown}), not a tpa-dist database; "
            "tpa-dist never writes into it — choose another --db"
        )


MODEL_SCHEMA = pa.schema(
    [
        ("model_id", pa.string()),
        ("revision", pa.string()),
        ("source_path", pa.string()),
        ("architecture", pa.string()),
        ("config", pa.string()),
        ("config_error", pa.string()),
        ("num_shards", pa.int32()),
        ("num_tensors", pa.int32()),
        ("num_params", pa.int64()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("run_id", pa.string()),
    ]
)

TENSOR_SCHEMA = pa.schema(
    [
        ("model_id", pa.string()),
        ("revision", pa.string()),
        ("param_name", pa.string()),
        ("shard", pa.string()),
        ("dtype", pa.string()),
        ("shape", pa.list_(pa.int64())),
        ("ndim", pa.int32()),
        ("numel", pa.int64()),
        ("nbytes", pa.int64()),
        ("layer_index", pa.int32()),
        ("block_type", pa.string()),
        ("expert_index", pa.int32()),
    ]
)


COHORT_MEMBER_SCHEMA = pa.schema(
    [
        ("position", pa.int32()),
        ("spec", pa.string()),
        ("model_id", pa.string()),
        ("revision", pa.string()),
        ("downloads", pa.int64()),
        ("gated", pa.string()),
    ]
)


class Store:
    """The driver's writer connection. Every batch is one transaction: whole or absent."""

    def __init__(self, path: str | Path, faults: Faults = NO_FAULTS, checked: bool = False) -> None:
        """`checked`: this process opened the file as a Store before (its schema made and checked): only connect."""
        self.path = Path(path)
        self.faults = faults
        created = not self.path.exists()
        self.con = connect_db(self.path)
        if not checked:
            self._prepare(created)
        st = self.path.stat()
        self._identity = (st.st_dev, st.st_ino)  # the file this connection writes (see _check_file)

    def _prepare(self, created: bool) -> None:
        """The schema and views made (idempotent), earlier versions' tables migrated, the row columns checked."""
        try:
            for stmt in statements(sql_text("schema.sql")) + statements(sql_text("views.sql")):
                self.con.execute(stmt)
        except duckdb.Error as exc:
            self.con.close()
            if created:
                _remove_new(self.path)
            raise StoreError(f"{self.path}: cannot create the tables: {_cause(exc)}") from None
        self._migrate()
        for name, declared in (
            ("matrix_analysis", set(MATRIX_COLUMNS) | set(STAMPED)),
            ("delta_analysis", set(DELTA_COLUMNS) | set(DELTA_STAMPED)),
        ):
            table = {r[0] for r in self.con.execute(f"DESCRIBE {name}").fetchall()} - {"created_at", *SEED_ALIASES}
            if table != declared:
                self.con.close()
                raise StoreError(
                    f"{self.path}: {name} columns differ from the declared row (only in the table: "
                    f"{sorted(table - declared)}, only in the row: {sorted(declared - table)})"
                )

    def _write_pause(self) -> None:
        """Injected fault (faults.py): every batch write pauses inside its open transaction (inserted, not committed)
        while the file `{db}.writing` exists, so a test can SIGKILL the driver in the middle of a write."""
        if self.faults.write_pause_s:
            Path(f"{self.path}.writing").touch()
            time.sleep(self.faults.write_pause_s)

    def _migrate(self) -> None:
        """Databases written by earlier versions: the embedding tables' `tensor` column is `param_name` now, and
        svd_90_percent_rank/ratio may be stored columns (they are computed on read in new databases) — then they
        keep being written."""
        cols = self.con.execute(
            "SELECT table_name, column_name, column_default FROM duckdb_columns() "
            "WHERE database_name = current_database()"
        ).fetchall()
        for table, column, _ in cols:
            if table.startswith("embedding_") and column == "tensor":
                try:
                    self.con.execute(f'ALTER TABLE "{table}" RENAME COLUMN tensor TO param_name')
                except duckdb.Error as exc:
                    raise StoreError(f"{self.path}: cannot upgrade {table} ({str(exc).splitlines()[0]})") from None
        self.stored_seed_aliases = any(
            t == "matrix_analysis" and c in SEED_ALIASES and default is None for t, c, default in cols
        )

    def close(self) -> None:
        self.con.close()

    def _check_file(self) -> None:
        """Refuse to write when the database file was deleted or replaced under this run: DuckDB would go on writing
        into the unlinked file, and everything after would be lost without a word."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            raise StoreError(
                f"{self.path} was deleted while this run was writing to it: its results are gone with the file. "
                "Run the submit again (into a new database)"
            ) from None
        if (st.st_dev, st.st_ino) != self._identity:
            raise StoreError(
                f"{self.path} was replaced by another file while this run was writing to it; nothing more is "
                "written. Run the submit again"
            )

    def _run(self, name: str, params: dict[str, object], appending: bool = False) -> None:
        """Run store/NAME.sql's statements; `appending`: a key that is stored already raises _KeyStored (the caller
        writes a replacement instead), every other failure is a StoreError naming the file."""
        self._check_file()
        try:
            for stmt in statements(sql_text(name)):
                self.con.execute(stmt, params)
        except (duckdb.Error, RuntimeError) as exc:
            if appending and isinstance(exc, duckdb.ConstraintException):
                raise _KeyStored(str(exc)) from None
            _reraise_interrupt(exc)
            raise StoreError(f"{self.path}: cannot write ({_cause(exc)})") from None

    def start_run(self, run_id: str, argv: str, config: dict, versions: dict, host: str) -> None:
        """Register a run; runs left 'running' by a driver that died become 'abandoned'."""
        self._run("store/runs_abandon.sql", {})
        self._run(
            "store/run_start.sql",
            dict(run_id=run_id, argv=argv, config=json.dumps(config), versions=json.dumps(versions), host=host),
        )

    def progress(self, run_id: str, total: int, done: int, failed: int, nbytes: int) -> None:
        self._run("store/run_progress.sql", dict(run_id=run_id, total=total, done=done, failed=failed, bytes=nbytes))

    def finish_run(self, run_id: str, **fields: object) -> None:
        params = dict(fields, run_id=run_id)
        params["throughput"] = json.dumps(params.get("throughput") or {})
        params["phases"] = json.dumps(params.get("phases") or {})
        self._run("store/run_finish.sql", params)

    def upsert_settings(self, settings_id: str, settings: dict) -> None:
        self._run("store/upsert_settings.sql", dict(settings_id=settings_id, settings=json.dumps(settings)))

    def upsert_model(self, record: ModelRecord) -> None:
        """A model's row (replacing the one of the same model and revision)."""
        fields = {name: getattr(record, name) for name in MODEL_COLUMNS}
        fields["config"] = json.dumps(record.config or {})
        self._run("store/upsert_model.sql", fields)

    def record_model(self, record: ModelRecord, tensors: Sequence[TensorInfo]) -> None:
        """A model's row and its tensor inventory, in one transaction."""
        self.record_models([(record, tensors)])

    def record_models(self, models: Sequence[tuple[ModelRecord, Sequence[TensorInfo]]]) -> None:
        """Models' rows and their tensor inventories, in one transaction (a census records its models a batch at a
        time: each statement costs milliseconds, whatever its rows)."""
        rows = pa.Table.from_pylist(
            [
                {name: json.dumps(r.config or {}) if name == "config" else getattr(r, name) for name in MODEL_COLUMNS}
                for r, _ in models
            ],
            schema=MODEL_SCHEMA,
        )
        table = pa.Table.from_pylist(
            [
                {
                    "model_id": record.model_id,
                    "revision": record.revision,
                    "param_name": t.param_name,
                    "shard": t.shard,
                    "dtype": t.dtype,
                    "shape": list(t.shape),
                    "ndim": t.ndim,
                    "numel": t.numel,
                    "nbytes": t.nbytes,
                    "layer_index": t.layer_index,
                    "block_type": t.block_type,
                    "expert_index": t.expert_index,
                }
                for record, tensors in models
                for t in tensors
            ],
            schema=TENSOR_SCHEMA,
        )
        with self.transaction():
            self.con.register("batch_models", rows)
            self.con.register("batch_tensors", table)
            self._run("store/insert_models.sql", {})
            self._run("store/insert_tensors.sql", {})
            self.con.unregister("batch_models")
            self.con.unregister("batch_tensors")

    def write_cohort(self, cohort: Cohort, run_id: str) -> None:
        """A cohort's listing and its members, in one transaction."""
        rows = pa.Table.from_pylist(
            [dict(m.__dict__, position=i) for i, m in enumerate(cohort.members, 1)],
            schema=COHORT_MEMBER_SCHEMA,
        )
        params = dict(
            name=cohort.name,
            listed_at=cohort.listed_at,
            source=cohort.source,
            query=cohort.query,
            members=list(cohort.specs),
            run_id=run_id,
        )
        with self.transaction():
            self.con.register("cohort_rows", rows)
            self._run("store/cohort_insert.sql", params)
            self._run("store/cohort_members_insert.sql", dict(name=cohort.name, listed_at=cohort.listed_at))
            self.con.unregister("cohort_rows")

    def stored_cohort(self, name: str) -> Cohort | None:
        """The latest listing stored under `name`, or None."""
        rows = self.con.execute(sql_text("store/cohort_latest.sql"), {"name": name}).fetchall()
        if not rows:
            return None
        source, query, listed_at = rows[0][:3]
        members = tuple(Member(*r[3:]) for r in rows)
        return Cohort(name, source, query, listed_at, members, stored=True)

    def done_keys(self, model_id: str, revision: str, settings_id: str) -> set[str]:
        rows = self.con.execute(
            sql_text("store/done_matrices.sql"), dict(model_id=model_id, revision=revision, settings_id=settings_id)
        ).fetchall()
        return {r[0] for r in rows}

    def done_rmt(self, model_id: str, revision: str, settings_id: str, rmt_id: str) -> set[str]:
        """Matrix keys with an rmt_analysis row for these settings (--rmt resumes on them)."""
        params = dict(model_id=model_id, revision=revision, settings_id=settings_id, rmt_id=rmt_id)
        return {r[0] for r in self.con.execute(sql_text("store/done_rmt.sql"), params).fetchall()}

    def matrix_norms(self, model_id: str, revision: str, settings_id: str) -> dict[str, tuple[float, float]]:
        """matrix_key -> (‖W‖_F, ‖W‖₂) of the matrices stored for one (model, revision, settings)."""
        params = dict(model_id=model_id, revision=revision, settings_id=settings_id)
        rows = self.con.execute(sql_text("store/matrix_norms.sql"), params).fetchall()
        return {key: (float(fro), float(spec)) for key, fro, spec in rows}

    def done_embeddings(self, model_id: str, revision: str) -> set[str]:
        rows = self.con.execute(sql_text("store/done_embeddings.sql"), dict(model_id=model_id, revision=revision))
        return {r[0] for r in rows.fetchall()}

    def write_embedding(self, tables: dict[str, pa.Table]) -> None:
        """Store one embedding analysis (emb_sweep, emb_choice, emb_clusters, emb_assignments) atomically."""
        with self.transaction():
            self._with_tables(tables, "store/insert_embedding.sql")

    def transaction(self) -> _Transaction:
        self._check_file()
        return _Transaction(self.con, self.path)

    def write_deltas(
        self, rows: list[DeltaRow], spectra: list[tuple[DeltaRow, np.ndarray]], stamps: dict[str, object]
    ) -> None:
        """Store ΔW rows (declared columns plus settings_id and run_id) and their spectra, atomically."""
        if not rows:
            return
        batch, batch_spectra = _delta_tables(rows, spectra, stamps)
        tables = {"batch_deltas": batch, "batch_delta_spectra": batch_spectra}
        self._append(tables, "store/append_delta_batch.sql", "store/insert_delta_batch.sql")

    def done_deltas(
        self, model_id: str, revision: str, base_model_id: str, base_revision: str, settings_id: str
    ) -> set[str]:
        params = dict(
            model_id=model_id,
            revision=revision,
            base_model_id=base_model_id,
            base_revision=base_revision,
            settings_id=settings_id,
        )
        return {r[0] for r in self.con.execute(sql_text("store/done_deltas.sql"), params).fetchall()}

    def write_batch(
        self,
        rows: list[MatrixRow],
        spectra: list[tuple[MatrixRow, np.ndarray]],
        stamps: dict[str, object],
        fallback_reasons: list[str | None] | None = None,
    ) -> None:
        """Store result rows (their declared columns, plus the driver's `stamps` — settings_id, run_id — and
        each row's fallback_reason) and their spectra, atomically."""
        if not rows:
            return
        reasons = fallback_reasons or [None] * len(rows)
        columns = {name: [getattr(r, name) for r in rows] for name in MATRIX_COLUMNS}
        if self.stored_seed_aliases:  # a database of an earlier version stores the seed's names as columns
            columns["svd_90_percent_rank"] = columns["energy_rank_90"]
            columns["svd_90_percent_ratio"] = [
                r.energy_rank_90 / r.design_rank if r.energy_rank_90 is not None and r.design_rank else None
                for r in rows
            ]
        columns.update({name: [value] * len(rows) for name, value in stamps.items()}, fallback_reason=reasons)
        batch_rows = pa.table(columns)
        values = [np.asarray(sv, dtype=np.float64) for _, sv in spectra]
        offsets = np.concatenate([[0], np.cumsum([len(v) for v in values])]).astype(np.int32)
        flat = np.concatenate(values) if values else np.zeros(0)
        batch_spectra = pa.table(
            {
                "model_id": [r.model_id for r, _ in spectra],
                "revision": [r.revision for r, _ in spectra],
                "settings_id": [stamps["settings_id"]] * len(spectra),
                "matrix_key": [r.matrix_key for r, _ in spectra],
                "param_name": [r.param_name for r, _ in spectra],
                "expert_index": pa.array([r.expert_index for r, _ in spectra], pa.int32()),
                "singular_values": pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, pa.float64())),
            }
        )
        rmt = _rmt_tables([r for r in rows if r.rmt is not None and r.status == "ok"], stamps)
        rmt_tables = {"batch_rmt": rmt[0], "batch_traps": rmt[1]} if rmt is not None else {}

        def then() -> None:  # inside the same transaction
            if rmt_tables:
                self._with_tables(rmt_tables, "store/insert_rmt.sql")
            self._write_pause()

        tables = {"batch_rows": batch_rows, "batch_spectra": batch_spectra}
        self._append(tables, "store/append_batch.sql", "store/insert_batch.sql", then)
        if self.faults.write_pause_s:
            Path(f"{self.path}.writing").unlink(missing_ok=True)

    def _append(
        self, tables: dict[str, pa.Table], append: str, replace: str, then: Callable[[], None] | None = None
    ) -> None:
        """`tables` registered and written in one transaction by `append` (plain INSERTs: DuckDB's upsert costs ~12 ms
        more per batch, and a batch's results are new rows but for a --force run or an error row run again); where a
        key is stored already that transaction is rolled back and the batch written by `replace` (INSERT OR REPLACE).
        `then()` runs inside the transaction, after the rows."""
        try:
            self._in_transaction(tables, append, then, appending=True)
        except _KeyStored:  # rolled back by the transaction
            self._in_transaction(tables, replace, then)

    def _in_transaction(
        self, tables: dict[str, pa.Table], sql: str, then: Callable[[], None] | None, appending: bool = False
    ) -> None:
        with self.transaction():
            self._with_tables(tables, sql, appending)
            if then is not None:
                then()

    def _with_tables(self, tables: dict[str, pa.Table], sql: str, appending: bool = False) -> None:
        """Run `sql` with `tables` registered under their names (unregistered after; a _KeyStored leaves them for the
        retry, which registers them anew)."""
        for name, table in tables.items():
            self.con.register(name, table)
        self._run(sql, {}, appending)
        for name in tables:
            self.con.unregister(name)


def _rmt_tables(rows: list[MatrixRow], stamps: dict[str, object]) -> tuple[pa.Table, pa.Table] | None:
    """(rmt_analysis rows, rmt_traps rows) of the matrices analyzed with --rmt, or None."""
    if not rows:
        return None
    ident = {
        "model_id": [r.model_id for r in rows],
        "revision": [r.revision for r in rows],
        "settings_id": [stamps["settings_id"]] * len(rows),
        "run_id": [stamps["run_id"]] * len(rows),
    }
    columns = {**ident, **{name: [getattr(r.rmt, name) for r in rows] for name in RMT_COLUMNS}}
    traps: dict[str, list] = {k: [] for k in ("model_id", "revision", "matrix_key", "rmt_id", "trap")}
    traps.update(row_index=[], col_index=[], value=[])
    for r in rows:
        for i, (row, col, value) in enumerate(r.rmt.traps or []):
            for key, v in zip(traps, (r.model_id, r.revision, r.matrix_key, r.rmt.rmt_id, i, row, col, value)):
                traps[key].append(v)
    traps["settings_id"] = [stamps["settings_id"]] * len(traps["trap"])
    schema = pa.schema(
        [(k, pa.string()) for k in ("model_id", "revision", "matrix_key", "rmt_id")]
        + [("trap", pa.int32()), ("row_index", pa.int64()), ("col_index", pa.int64()), ("value", pa.float64())]
        + [("settings_id", pa.string())]
    )
    return pa.table(columns), pa.table(traps, schema=schema)


def _delta_tables(
    rows: list[DeltaRow], spectra: list[tuple[DeltaRow, np.ndarray]], stamps: dict[str, object]
) -> tuple[pa.Table, pa.Table]:
    columns = {name: [getattr(r, name) for r in rows] for name in DELTA_COLUMNS}
    columns.update({name: [value] * len(rows) for name, value in stamps.items()})
    for name in ("principal_angles", "intruder_similarity"):
        columns[name] = pa.array(columns[name], pa.list_(pa.float64()))
    keys = ("model_id", "revision", "base_model_id", "base_revision", "matrix_key")
    spectra_cols = {k: [getattr(r, k) for r, _ in spectra] for k in keys}
    spectra_cols["settings_id"] = [stamps["settings_id"]] * len(spectra)
    spectra_cols["singular_values"] = pa.array(
        [np.asarray(sv, np.float64) for _, sv in spectra], pa.list_(pa.float64())
    )
    return pa.table(columns), pa.table(spectra_cols)


def is_interrupt(exc: BaseException | None) -> bool:
    """Whether `exc` is a Ctrl-C that landed inside a DuckDB call: DuckDB reports it as "Query interrupted" (a
    RuntimeError or an InterruptException), not as KeyboardInterrupt."""
    return isinstance(exc, duckdb.InterruptException) or (
        isinstance(exc, RuntimeError) and "interrupt" in str(exc).lower()
    )


def _reraise_interrupt(exc: BaseException | None) -> None:
    """Turn DuckDB's report of a Ctrl-C back into KeyboardInterrupt, so the run stops as interrupted."""
    if is_interrupt(exc):
        raise KeyboardInterrupt from None


class _KeyStored(Exception):
    """An appended batch met a key that is stored already (its transaction is rolled back by _Transaction)."""


class _Transaction:
    """BEGIN … COMMIT; any failure (a full disk included) rolls back and becomes a StoreError."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path) -> None:
        self.con = con
        self.path = path

    def __enter__(self) -> duckdb.DuckDBPyConnection:
        self.con.execute("BEGIN TRANSACTION")
        return self.con

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            try:
                self.con.execute("COMMIT")
                return False
            except (duckdb.Error, RuntimeError) as commit_exc:
                exc_type, exc = type(commit_exc), commit_exc
        try:
            self.con.execute("ROLLBACK")
        except (duckdb.Error, RuntimeError):
            pass  # the transaction is already gone; nothing of it was stored
        _reraise_interrupt(exc)
        if isinstance(exc, duckdb.Error):
            advice = "" if _damaged(exc) else " Is the disk full? Free space and run the same submit again to resume."
            raise StoreError(
                f"{self.path}: write failed and was rolled back — nothing of this batch was stored, earlier "
                f"batches are intact ({_cause(exc)}).{advice}"
            ) from None
        return False

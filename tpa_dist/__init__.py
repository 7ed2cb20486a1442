"""tpa-dist: distributed, exact spectral analysis of LLM weight matrices into DuckDB."""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

from tpa_dist.jobs import Job  # noqa: E402 - light: settings and errors only


def connect(db: str | Path = "data/tpa.duckdb"):  # noqa: ANN201 - duckdb.DuckDBPyConnection
    """A read-only DuckDB connection to a results database (tables and views as in the README)."""
    from tpa_dist.db.store import connect_db

    return connect_db(db, read_only=True)


def submit(job: Job):  # noqa: ANN201 - driver.RunSummary
    """Analyze every model of `job` into its database (what `tpa-dist submit` runs); see RunSummary.ok."""
    from tpa_dist.run.driver import submit as run

    return run(job)


__all__ = ["Job", "__version__", "connect", "submit"]

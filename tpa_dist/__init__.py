"""tpa-dist: distributed, exact spectral analysis of LLM weight matrices into DuckDB."""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"


def connect(db: str | Path = "data/tpa.duckdb"):  # noqa: ANN201 - duckdb.DuckDBPyConnection
    """A read-only DuckDB connection to a results database (tables and views as in the README)."""
    from .store import connect_db

    return connect_db(db, read_only=True)


__all__ = ["__version__", "connect"]

"""tpa-dist: distributed, exact spectral analysis of LLM weight matrices into DuckDB."""

__version__ = "0.1.0"

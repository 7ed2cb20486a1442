"""The project's SQL files (schema, views, store statements, report and console sections), read as package data.

In a checkout they live in the top-level ``sql/`` folder; an installed wheel carries them as the data of the
``tpa_dist.sql`` package. Both are read through ``importlib.resources`` Traversables, so a zip or a namespace
package works as well as a plain folder.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from tpa_dist.errors import TpaError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable


@cache
def sql_root() -> Traversable:
    """The folder holding ``schema.sql``: the checkout's ``sql/`` when running from source, else package data."""
    checkout = Path(__file__).resolve().parents[2] / "sql"
    if (checkout / "schema.sql").is_file():
        return checkout
    root = resources.files("tpa_dist").joinpath("sql")
    if not root.joinpath("schema.sql").is_file():
        raise TpaError(
            "tpa-dist's SQL files are missing from this installation (tpa_dist/sql/schema.sql); reinstall the "
            "package (pip install --force-reinstall tpa-dist)"
        )
    return root


@cache
def sql_text(name: str) -> str:
    """The text of a packaged .sql file by its path under ``sql/``, e.g. ``store/insert_batch.sql``."""
    node = sql_root()
    for part in name.split("/"):
        node = node.joinpath(part)
    return node.read_text(encoding="utf-8")


def sql_files(folder: str, pattern: str = ".sql") -> list[Traversable]:
    """The packaged .sql files of one folder under ``sql/`` (e.g. ``reports``), sorted by name."""
    node = sql_root().joinpath(folder)
    if not node.is_dir():
        return []
    return sorted((f for f in node.iterdir() if f.is_file() and f.name.endswith(pattern)), key=lambda f: f.name)


def strip_comments(text: str) -> str:
    """The SQL without its whole-line ``--`` comments (header lines of section files included)."""
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))


def statements(text: str) -> list[str]:
    """The statements of a project .sql file (whole-line comments dropped, split on ``;``)."""
    return [s.strip() for s in strip_comments(text).split(";") if s.strip()]

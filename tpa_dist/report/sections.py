"""Report sections: the `.sql` files whose header says a section's title, what it shows and how it is drawn
(`-- title:`, `-- shows:`, `-- draw: KIND k=v ...`, `-- optional:`), a section's rendered result, and the text
helpers report.md and report.html share (cell text, anchors, the lead sections before the contents).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from tpa_dist.db.sqlfiles import sql_files
from tpa_dist.errors import ReportError
from tpa_dist.files import read_text_limited
from tpa_dist.text import cell_number, printable

DRAW_KINDS = ("table", "heatmap", "lines", "loglog", "histogram", "esd", "map")
_HEADER = re.compile(r"^--\s*(title|shows|draw|optional|needs):\s*(.*)$")
_NEED = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*|models>\d+)$")  # a table that must have rows, or models>N


@dataclass
class Section:
    path: object  # a Path, or a Traversable of the packaged sections
    title: str
    shows: str
    draw: str  # table | heatmap | lines | loglog | histogram | esd
    options: dict[str, str]
    query: str
    optional: bool = False  # left out of the report when it has no rows (e.g. ΔW sections without --base)
    needs: tuple[str, ...] = ()  # not queried unless each holds: TABLE has rows, models>N (optional or not)

    @property
    def name(self) -> str:
        return self.path.name


@dataclass
class Rendered:
    section: Section
    columns: list[str] = field(default_factory=list)
    rows: list[tuple] = field(default_factory=list)
    png: bytes | None = None
    error: str | None = None
    captions: list[str] = field(default_factory=list)
    note: str | None = None  # the result was cut
    key: str | None = None  # what its figure shows, as a digest (render.figure_key): an unchanged one is not redrawn


def parse_section(path: Path) -> Section:
    """Read a section file: `-- title:`, `-- shows:` (continued by `--` lines), `-- draw: KIND k=v ...`,
    `-- optional: true`, `-- needs: TABLE, models>N` (a section not queried when a table it reads has no rows or the
    report has too few models — left out when optional, '(no rows)' otherwise, as its query would have said: each
    query costs ~20 ms, and most reports have no ΔW, RMT, embedding or cohort rows)."""
    try:
        text = read_text_limited(path, 1 << 20) if isinstance(path, Path) else path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ReportError(f"{path}: not UTF-8 text") from None
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    meta: dict[str, str] = {}
    last = None
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        m = _HEADER.match(line)
        if m:
            last = m.group(1)
            meta[last] = m.group(2).strip()
        elif last == "shows":
            meta["shows"] += " " + line.lstrip("- ").strip()
    if "title" not in meta:
        raise ReportError(f"{path}: no `-- title:` header line (see sql/reports/*.sql for the format)")
    kind, *opts = (meta.get("draw") or "table").split()
    if kind not in DRAW_KINDS:
        raise ReportError(f"{path}: unknown draw kind {kind!r} (one of {', '.join(DRAW_KINDS)})")
    options = dict(o.split("=", 1) for o in opts if "=" in o)
    optional = meta.get("optional", "").strip().lower() in ("true", "yes")
    needs = tuple(n.strip() for n in meta.get("needs", "").split(",") if n.strip())
    bad = [n for n in needs if not _NEED.match(n)]
    if bad:
        raise ReportError(f"{path}: `-- needs:` takes table names and models>N, not {bad[0]!r}")
    return Section(path, meta["title"], meta.get("shows", ""), kind, options, text, optional, needs)


def load_sections(extra_dirs: tuple[str | Path, ...] = ()) -> list[Section]:
    """Built-in sections (sql/reports/NN_*.sql) in order, then every *.sql of each extra folder."""
    paths: list = [f for f in sql_files("reports") if re.match(r"\d\d_", f.name)]
    for folder in extra_dirs:
        found = sorted(Path(folder).glob("*.sql"))
        if not found:
            raise ReportError(f"{folder}: no .sql files for extra report sections")
        paths += found
    sections = [parse_section(p) for p in paths]
    seen: dict[str, Section] = {}
    for sec in sections:  # a section's slug names its figure file and its HTML id: two of one name would collide
        other = seen.setdefault(slug(sec), sec)
        if other is not sec:
            raise ReportError(
                f"{sec.path}: its name gives the report id {slug(sec)!r}, as {other.path} does (a bundled section's "
                "figure and anchor would be replaced); rename the file"
            )
    return sections


def cell_text(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return cell_number(v)
    if isinstance(v, (list, tuple)):
        return ", ".join(cell_text(x) for x in v)
    return printable(str(v))


def slug(sec: Section) -> str:
    return re.sub(r"[^a-z0-9]+", "_", sec.name.removesuffix(".sql").lower()).strip("_")


def hint(r: Rendered, models: list[str]) -> str:
    return f"tpa-dist sql --file {r.section.path} --models {','.join(models)}"


def lead(rendered: list[Rendered]) -> int:
    """How many sections come before the table of contents: the findings and the summary (00_*)."""
    return max(1, sum(1 for r in rendered[:2] if r.section.path.name.startswith("00_")))

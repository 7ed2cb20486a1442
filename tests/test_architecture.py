"""The package's shape, checked statically: an acyclic import graph (function-level imports included), and the
modules that run inside Ray workers free of the database and the command line."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "tpa_dist"

#: what Ray workers import to read, decode and analyze tensors and to cluster embeddings
WORKER_MODULES = {
    "actors",
    "analysis",
    "spectrum",
    "reader",
    "metrics",
    "heavytail",
    "stats",
    "dtypes",
    "quant",
    "kmeans",
    "embedding",
    "embedding_run",
    "tasks",
    "settings",
    "vocab",
}


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """(tpa_dist modules, third-party top-level packages) that a module imports anywhere in its body."""
    ours, theirs = set(), set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                if node.module:
                    ours.add(node.module.split(".")[0])
                else:
                    ours |= {a.name for a in node.names}
            elif node.module and node.module.split(".")[0] == "tpa_dist":
                parts = node.module.split(".")
                ours |= {parts[1]} if len(parts) > 1 else {a.name for a in node.names}
            elif node.module and node.level == 0:
                theirs.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top == "tpa_dist":
                    ours.add(alias.name.split(".")[1] if "." in alias.name else "__init__")
                else:
                    theirs.add(top)
    return ours, theirs


def _graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    modules = {p.stem: p for p in PACKAGE.glob("*.py")}
    edges, third = {}, {}
    for name, path in modules.items():
        ours, theirs = _imports(path)
        edges[name] = {m for m in ours if m in modules and m != name}
        third[name] = theirs
    return edges, third


def test_import_graph_is_acyclic():
    edges, _ = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)


def test_worker_modules_import_neither_duckdb_nor_click():
    edges, third = _graph()
    for start in sorted(WORKER_MODULES):
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            if node in seen:
                continue
            seen.add(node)
            todo += edges[node]
        bad = {m: third[m] & {"duckdb", "click"} for m in seen if third[m] & {"duckdb", "click"}}
        assert not bad, f"{start} reaches {bad} (through {sorted(seen)})"


def test_no_module_shadows_the_standard_library():
    import sys

    assert not {p.stem for p in PACKAGE.glob("*.py")} & set(sys.stdlib_module_names)


def test_result_row_declares_exactly_the_table_columns(tmp_path):
    """The store writes MatrixRow's declared columns plus the driver's stamps: a column missing on either side is
    an error at open, and a misspelt measurement name is an error when set, never a silent NULL."""
    import duckdb
    import pytest

    from tpa_dist.rows import MATRIX_COLUMNS, STAMPED, MatrixRow
    from tpa_dist.store import Store

    Store(tmp_path / "t.duckdb").close()
    con = duckdb.connect(str(tmp_path / "t.duckdb"), read_only=True)
    table = [r[0] for r in con.execute("DESCRIBE matrix_analysis").fetchall()]
    con.close()
    assert set(table) - {"created_at", "svd_90_percent_rank", "svd_90_percent_ratio"} == set(MATRIX_COLUMNS) | set(
        STAMPED
    )  # the seed's names are generated columns (see the next test)
    row = MatrixRow("m", "r", "k", "k", None, None, "other", "matrix", "(1, 1)", 1, 1, 1, "F32", "s", 4)
    with pytest.raises(TypeError, match="MatrixRow has no column .stable_rnak."):
        row.update(stable_rnak=1.0)


def test_one_name_per_concept_and_older_databases_upgrade(tmp_path):
    """svd_90_percent_rank/ratio are the seed's names of energy_rank_90 and its ratio: computed on read, never a
    second stored value; the embedding tables name their matrix param_name like every other table. A database of
    the earlier layout (stored seed columns, `tensor`) is upgraded when opened for writing and keeps working."""
    import duckdb

    from tpa_dist.rows import MatrixRow
    from tpa_dist.store import Store

    path = tmp_path / "old.duckdb"
    Store(path).close()
    con = duckdb.connect(str(path))
    defaults = dict(
        con.execute(
            "SELECT column_name, column_default FROM duckdb_columns() WHERE table_name = 'matrix_analysis'"
        ).fetchall()
    )
    assert "energy_rank_90" in defaults["svd_90_percent_rank"]  # generated from it
    for table in ("embedding_sweep", "embedding_choice", "embedding_clusters", "embedding_assignments"):
        assert "param_name" in {r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()}
    # the earlier layout
    for q in (
        "ALTER TABLE matrix_analysis DROP COLUMN svd_90_percent_rank",
        "ALTER TABLE matrix_analysis DROP COLUMN svd_90_percent_ratio",
        "ALTER TABLE matrix_analysis ADD COLUMN svd_90_percent_rank INTEGER",
        "ALTER TABLE matrix_analysis ADD COLUMN svd_90_percent_ratio DOUBLE",
        "ALTER TABLE embedding_choice RENAME COLUMN param_name TO tensor",
    ):
        con.execute(q)
    con.close()
    store = Store(path)
    row = MatrixRow("m", "r", "k", "k", None, 0, "q_proj", "matrix", "(8, 4)", 8, 4, 32, "F32", "s", 128)
    row.update(design_rank=4, energy_rank_90=3)
    store.write_batch([row], [], {"settings_id": "s", "run_id": "r"})
    store.close()
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("SELECT svd_90_percent_rank, svd_90_percent_ratio FROM matrix_analysis").fetchone() == (3, 0.75)
    assert "param_name" in {r[0] for r in con.execute("DESCRIBE embedding_choice").fetchall()}
    con.close()

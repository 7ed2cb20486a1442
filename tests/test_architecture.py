"""The package's shape, checked statically (function-level imports included): layers that import only downwards,
an acyclic module graph, the worker-side layers free of Ray, DuckDB, click and matplotlib, and few top-level modules.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "tpa_dist"

#: the layers, lowest first: a module may import its own layer and those before it, never one after it. The base is
#: the package's top-level modules (errors, settings, jobs, faults, files, text, interrupts, processes); the top is
#: the command line and the package's public API (tpa_dist.connect, tpa_dist.submit).
LAYERS = ["base", "checkpoint", "compute", "sources", "db", "report", "run", "cli"]
#: what Ray workers run: these import none of the driver's or the user interface's libraries
WORKER_SIDE = {"checkpoint", "compute"}
FORBIDDEN_IN_WORKERS = {"ray", "duckdb", "click", "matplotlib"}
MAX_TOP_LEVEL = 15


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:  # the package itself: its public API (connect, submit) is a facade over everything
        return "cli"
    if parts[1] in ("cli", "__main__"):
        return "cli"
    return parts[1] if parts[1] in LAYERS else "base"


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """(tpa_dist modules, third-party top-level packages) a module imports anywhere in its body."""
    here = _module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    ours, theirs = set(), set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                names = [target] if node.module else [f"{target}.{a.name}" for a in node.names]
                ours |= set(names)
            elif node.module and node.module.split(".")[0] == "tpa_dist":
                ours.add(node.module)
                ours |= {f"{node.module}.{a.name}" for a in node.names}  # `from tpa_dist.report import plots`
            elif node.module:
                theirs.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                (ours if alias.name.split(".")[0] == "tpa_dist" else theirs).add(
                    alias.name if alias.name.startswith("tpa_dist") else alias.name.split(".")[0]
                )
    return ours, theirs


def _graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges, third = {}, {}
    for name, path in modules.items():
        ours, theirs = _imports(path)
        # (the package's own __init__ is its facade: `from tpa_dist import __version__` is a constant, not a layer)
        edges[name] = {m for m in ours if m in modules and m not in (name, "tpa_dist")}
        third[name] = theirs
    return edges, third


def test_layers_import_only_downwards():
    edges, _ = _graph()
    upward = [
        f"{a} ({_layer(a)}) imports {b} ({_layer(b)})"
        for a, targets in sorted(edges.items())
        for b in sorted(targets)
        if b != "tpa_dist" and LAYERS.index(_layer(b)) > LAYERS.index(_layer(a))
    ]
    assert not upward, "\n".join(upward)


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
        if node not in state and node != "tpa_dist":
            visit(node)


def test_worker_side_layers_import_neither_ray_nor_the_database_nor_the_interface():
    """checkpoint/ and compute/ — what a Ray worker runs — reach none of ray, duckdb, click, matplotlib, through any
    module they import."""
    edges, third = _graph()
    for start in sorted(m for m in edges if _layer(m) in WORKER_SIDE):
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            if node in seen:
                continue
            seen.add(node)
            todo += [m for m in edges[node] if m != "tpa_dist"]
        bad = {m: third[m] & FORBIDDEN_IN_WORKERS for m in seen if third[m] & FORBIDDEN_IN_WORKERS}
        assert not bad, f"{start} reaches {bad} (through {sorted(seen)})"


def test_every_subpackage_says_what_it_holds_and_the_top_level_stays_small():
    for init in PACKAGE.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc and len(doc) > 40, f"{init} has no docstring saying what the package holds"
    top = [p for p in PACKAGE.glob("*.py")]
    assert len(top) <= MAX_TOP_LEVEL, sorted(p.name for p in top)


def test_no_module_shadows_the_standard_library():
    assert not {p.stem for p in PACKAGE.rglob("*.py")} & set(sys.stdlib_module_names) - {"__init__", "__main__"}


def test_result_row_declares_exactly_the_table_columns(tmp_path):
    """The store writes MatrixRow's declared columns plus the driver's stamps: a column missing on either side is
    an error at open, and a misspelt measurement name is an error when set, never a silent NULL."""
    import duckdb
    import pytest

    from tpa_dist.compute.rows import MATRIX_COLUMNS, STAMPED, MatrixRow
    from tpa_dist.db.store import Store

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

    from tpa_dist.compute.rows import MatrixRow
    from tpa_dist.db.store import Store

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

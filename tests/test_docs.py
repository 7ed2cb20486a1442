"""The documentation a newcomer follows: every relative link of README.md and docs/ resolves, every `tpa-dist …`
command shown in README.md parses with the installed command line, and the README stays a short front page."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from tpa_dist.cli import main

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if "://" in target or target.startswith(("#", "mailto:")):
            continue
        path = target.split("#", 1)[0]
        if path and not (page.parent / path).exists():
            broken.append(target)
    assert not broken, f"{page.name}: {broken}"


ENDS = {"&&", "||", ";", "|", "python3", "pip", "ray", ".venv/bin/pip", ".venv/bin/python"}


def _commands(text: str) -> list[list[str]]:
    """The `tpa-dist …` commands of the fenced code blocks, as argv (quotes, continuation lines and multi-line
    quoted SQL as a shell reads them)."""
    out: list[list[str]] = []
    for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", text, re.S):
        current: list[str] | None = None
        for token in shlex.split(block, comments=True):
            if token.endswith("tpa-dist"):
                current = []
                out.append(current)
            elif current is not None and (token in ENDS or re.fullmatch(r"[A-Z_]+=\S*", token)):
                current = None
            elif current is not None:
                current.append(token)
    return out


def test_every_command_in_the_readme_parses():
    commands = _commands((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(commands) >= 5, commands  # the set-up command and the examples (the table is not code)
    for argv in commands:
        ctx = click.Context(main, info_name="tpa-dist")
        cmd = main.get_command(ctx, argv[0])
        assert cmd is not None, f"tpa-dist {argv[0]}: no such command"
        try:
            cmd.make_context(argv[0], list(argv[1:]), parent=ctx)
        except click.UsageError as exc:  # pragma: no cover - the failure message
            raise AssertionError(f"tpa-dist {' '.join(argv)}: {exc}") from None


def test_the_readme_is_a_front_page():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, len(lines)
    text = "\n".join(lines)
    for page in ("docs/how-it-works.md", "docs/database.md", "docs/cluster.md", "docs/environment.md"):
        assert f"]({page})" in text


FENCE = re.compile(r"```(\w*)\n(.*?)```", re.S)


def _documented_queries() -> list[tuple[str, str]]:
    """(page, SQL) of every fenced `sql` block and every `tpa-dist sql "…"` command of a fenced shell block (report
    section files, which bind $models, are run with the test's models)."""
    out = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for lang, block in FENCE.findall(text):
            if lang == "sql":
                out.append((page.name, block))
            elif lang in ("", "bash", "sh") and "tpa-dist sql" in block:
                argv = shlex.split(block, comments=True)
                for i, token in enumerate(argv):
                    if token.endswith("tpa-dist") and argv[i + 1] == "sql":
                        rest = argv[i + 2 :]
                        query = next(t for t in rest if not t.startswith("--") and rest[rest.index(t) - 1] != "--db")
                        out.append((page.name, query))
    return out


@pytest.fixture(scope="module")
def docs_db(tmp_path_factory):
    import tpa_dist

    from .conftest import quiet_job

    work = tmp_path_factory.mktemp("docs")
    job = quiet_job(work / "d.duckdb", ("synth:tiny-llama", "synth:tiny-qwen3"), work / "out", embedding=False)
    summary = tpa_dist.submit(job)
    assert summary.ok, summary.describe()
    return str(work / "d.duckdb")


@pytest.mark.parametrize("page,query", _documented_queries(), ids=lambda v: v if v.endswith(".md") else "")
def test_every_documented_query_runs_as_written(docs_db, page, query):
    from tpa_dist.db.query import run_sql

    result = run_sql(docs_db, query, None, ["synth:tiny-llama", "synth:tiny-qwen3"])
    assert result.columns, (page, query)


def test_the_documented_queries_are_found():
    pages = {p for p, _ in _documented_queries()}
    assert {"database.md", "reports.md", "README.md", "rmt.md"} <= pages, pages
    assert any("block_rank(block_type)" in q for _, q in _documented_queries())


def _leaf_commands(group: click.Group, path: list[str]):
    ctx = click.Context(main, info_name="tpa-dist")
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if isinstance(cmd, click.Group):
            yield from _leaf_commands(cmd, [*path, name])
        else:
            yield [*path, name], cmd


def test_every_command_and_option_is_in_the_command_reference():
    text = (ROOT / "docs" / "commands.md").read_text(encoding="utf-8")
    missing = []
    for path, cmd in _leaf_commands(main, []):
        if f"tpa-dist {path[0]}" not in text:
            missing.append(" ".join(path))
        for param in cmd.params:
            if isinstance(param, click.Option):
                missing += [f"{' '.join(path)} {o}" for o in param.opts if o.startswith("--") and o not in text]
    assert not missing, missing

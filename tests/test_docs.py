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

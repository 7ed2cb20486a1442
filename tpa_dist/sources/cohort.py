"""A cohort: the models of a census, enumerated rather than typed — a file of specs (`--models-from`) or a Hub query
(`--hub-query`, huggingface_hub's `HfApi.list_models`) resolved to pinned revisions. The driver stores each listing in
the database (`cohorts`, `cohort_members`), so a census can be re-run, extended and cited; a stored listing is reused
(never listed again) unless `--relist` asks for a new one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from tpa_dist import constants
from tpa_dist.errors import DownloadError, JobError, JobFileError
from tpa_dist.files import read_text_limited
from tpa_dist.settings import HubQuery, check_text

MAX_LIST_BYTES = 16 << 20  # a models file of 100,000 specs is ~5 MB


def read_models_file(path: str) -> list[str]:
    """The specs of a `--models-from` file: one per line (the same specs as --models, NAME=SPEC included); blank
    lines and `#` comments (whole-line or after a spec) skipped. One JobFileError naming the file and line."""
    try:
        text = read_text_limited(path, MAX_LIST_BYTES)
    except ValueError as exc:
        raise JobFileError(f"--models-from {path}: too large for a list of models ({exc})") from None
    except UnicodeDecodeError:
        raise JobFileError(f"--models-from {path}: not UTF-8 text") from None
    except OSError as exc:
        raise JobFileError(f"--models-from {path}: cannot read it: {exc.strerror or exc}") from None
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        spec = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        if not spec:
            continue
        try:
            check_text(f"--models-from {path}, line {number}", spec)
        except JobError as exc:
            raise JobFileError(str(exc)) from None
        out.append(spec)
    if not out:
        raise JobFileError(f"--models-from {path}: no model in it (one spec per line, # for comments)")
    return out


@dataclass(frozen=True)
class Member:
    """One model of a cohort: the spec submitted (pinned `org/name@sha` for a Hub listing) and what was listed."""

    spec: str
    model_id: str
    revision: str | None = None
    downloads: int | None = None
    gated: str | None = None  # the Hub's gated flag ("auto", "manual") or None


@dataclass(frozen=True)
class Cohort:
    """A census's definition: its name, where its members came from, when, and the members in order."""

    name: str
    source: str  # "file" | "hub"
    query: str  # the file's path, or the Hub query's text
    listed_at: dt.datetime
    members: tuple[Member, ...] = field(default=())
    stored: bool = False  # read back from the database (not listed by this run)

    @property
    def specs(self) -> tuple[str, ...]:
        return tuple(m.spec for m in self.members)

    def describe(self) -> str:
        when = self.listed_at.strftime("%Y-%m-%d %H:%M UTC")
        how = "stored listing reused (--relist lists again)" if self.stored else f"listed {when}"
        return f"cohort {self.name!r}: {len(self.members)} models from {self.source} {self.query!r}, {how}"


def list_hub(query: HubQuery, token: str | None = None) -> list[Member]:
    """The Hub's models for `query`, each pinned to its current commit (the listing's `sha`)."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=constants.hf_endpoint(), token=token)
    try:
        found = api.list_models(
            author=query.author,
            search=query.search,
            filter=list(query.filters) or None,
            sort=query.sort,
            limit=query.limit,
            expand=["sha", "downloads", "gated"],
        )
        return [_member(info) for info in found]
    except Exception as exc:  # noqa: BLE001 - any HTTP stack error: one line naming the query
        raise DownloadError(f"--hub-query {query.text()}: the Hub's model listing failed: {exc}") from None


def _member(info: object) -> Member:
    repo = str(getattr(info, "id", "") or "")
    sha = getattr(info, "sha", None)
    gated = getattr(info, "gated", None)
    return Member(
        spec=f"{repo}@{sha}" if sha else repo,
        model_id=repo,
        revision=sha,
        downloads=getattr(info, "downloads", None),
        gated=str(gated) if gated not in (None, False) else None,
    )


def file_members(specs: Iterable[str]) -> tuple[Member, ...]:
    """Members of a `--models-from` list: each spec as written (its model_id as planning will store it)."""
    from tpa_dist.jobs import parse_model_entry
    from tpa_dist.sources.resolve import split_revision

    out = []
    for spec in specs:
        name, target = parse_model_entry(spec)
        repo, revision = split_revision(target)
        out.append(Member(spec=spec, model_id=name or repo, revision=revision))
    return tuple(out)


__all__ = [
    "Cohort",
    "Member",
    "file_members",
    "list_hub",
    "read_models_file",
]

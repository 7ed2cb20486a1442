"""Declarative jobs: which models, the settings sections, where results go — from a TOML file, flags or Python.

A job file::

    models = ["synth:tiny-llama", { id = "Qwen/Qwen3-4B", revision = "main", name = "qwen3-4b" }]
    [job]        db, output_dir
    [analysis]   sparsity_threshold, block_mib, seed, force
    [embedding]  enabled, k_min, k_max, k_step, include_special
    [workers]    cpu_only, num_workers, threads_per_worker, gpus_per_worker, gpu_streams, address,
                 request_cpus, request_gpus, wait_for_workers_s
    [delta]      subspace_rank, intruder_k, intruder_epsilon, subspace
    [rmt]        enabled, mp_fit, randomize, detx, vectors, seed, fit, fix_fingers, max_fingers, finger_thresh,
                 tolerance
    [cohort]     name, models_from, hub_query, relist   (a census: sources/cohort.py)

Unknown keys are errors and every value is type- and range-checked (settings.py) with its key in the message.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from tpa_dist.errors import JobError, JobFileError
from tpa_dist.files import read_text_limited
from tpa_dist.settings import (
    SECTIONS,
    AnalysisSettings,
    CohortSettings,
    DeltaSettings,
    EmbeddingSettings,
    RmtSettings,
    WorkerSettings,
    check,
    check_text,
    section_keys,
    setting,
    shown,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: flat option names (CLI flags, Job.create keywords) that are not a section field of the same name
_ALIASES = {"embedding": ("embedding", "enabled"), "rmt": ("rmt", "enabled"), "cohort": ("cohort", "name")}


@dataclass(frozen=True)
class Job:
    """A resolved submit. `models` entries are specs (folder, synth:PRESET, org/name[@rev]), optionally
    ``NAME=SPEC`` to choose the stored model_id."""

    models: tuple[str, ...] = ()
    db: str = setting("data/tpa.duckdb", "str", flag="--db")
    # None: "outputs" beside the database (data/tpa.duckdb -> data/outputs), so runs into different databases never
    # share (and overwrite) one output folder
    output_dir: str | None = setting(None, "str", flag="--output-dir", nullable=True)
    analysis: AnalysisSettings = field(default_factory=AnalysisSettings)
    embedding: EmbeddingSettings = field(default_factory=EmbeddingSettings)
    workers: WorkerSettings = field(default_factory=WorkerSettings)
    delta: DeltaSettings = field(default_factory=DeltaSettings)
    rmt: RmtSettings = field(default_factory=RmtSettings)
    cohort: CohortSettings = field(default_factory=CohortSettings)
    base: str | None = None  # --base: the base of every model (a spec, or "previous": each model's predecessor)
    bases: tuple[tuple[str, str], ...] = ()  # per model entry (job files' `base = "..."`): (entry, base spec)
    progress: bool = True
    report: bool = True  # --no-report: store the results and the CSV, skip report.md/html and its figures
    argv: tuple[str, ...] = field(default=(), compare=False)
    started: float | None = field(default=None, compare=False)  # the command's start (time.monotonic), set by the CLI

    def __post_init__(self) -> None:
        check("job", self)
        if self.output_dir is None:
            object.__setattr__(self, "output_dir", str(Path(self.db).parent / "outputs"))
        if self.base is not None:
            if not isinstance(self.base, str) or not self.base.strip():
                raise JobError(f"base (--base) must be a model spec or 'previous', got {shown(self.base)}")
            check_text("base (--base)", self.base)
        models = (self.models,) if isinstance(self.models, str) else tuple(self.models)
        for m in models:
            if not isinstance(m, str) or not m.strip():
                raise JobError(f"models: every entry must be a non-empty string, got {shown(m)}")
            check_text("models (--models)", m)
        object.__setattr__(self, "models", models)
        if self.analysis.threads != self.workers.threads_per_worker:
            object.__setattr__(self, "analysis", replace(self.analysis, threads=self.workers.threads_per_worker))

    @classmethod
    def create(cls, **options: object) -> Job:
        """A job from flat option names (as the CLI flags: db, sparsity_threshold, k_min, cpu_only, embedding,
        seed …); `seed` seeds both synth: presets and k-means."""
        return cls().with_overrides(**options)

    def base_of(self, entry: str) -> str | None:
        """The base spec of a model entry: its own (job file), else --base; 'previous' means the entry before it
        in `models` (checkpoints over training); None for the first model with 'previous' and for the base itself."""
        own = dict(self.bases).get(entry)
        base = own or self.base
        if base == "previous":
            i = self.models.index(entry)
            return self.models[i - 1] if i > 0 else None
        return None if base == entry else base

    def with_overrides(self, **options: object) -> Job:
        """This job with every non-None option applied (CLI options win over the file)."""
        top = {f.name for f in fields(Job)} - set(SECTIONS)
        values = {k: v for k, v in options.items() if v is not None}
        own = {k: values.pop(k) for k in list(values) if k in top and k not in _ALIASES}
        parts: dict[str, dict[str, object]] = {name: {} for name in SECTIONS}
        for key, value in values.items():
            targets = (
                [_ALIASES[key]]
                if key in _ALIASES
                else [(name, key) for name, sec in SECTIONS.items() if key in {f.name for f in fields(sec)}]
            )
            if not targets:
                raise JobError(f"unknown job option {key!r}")
            for section, name in targets:
                parts[section][name] = value
        new = {name: replace(getattr(self, name), **kw) for name, kw in parts.items() if kw}
        if "db" in own and "output_dir" not in own and self.output_dir == str(Path(self.db).parent / "outputs"):
            own["output_dir"] = None  # it followed the database: it follows the new one
        return replace(self, **own, **new)


_NAME_SPLIT = re.compile(r"((?:[^=\\]|\\.)*)=(.*)", re.S)  # NAME up to the first '=' not escaped by a backslash


def parse_model_entry(entry: str) -> tuple[str | None, str]:
    """``NAME=SPEC`` -> (NAME, SPEC); a plain spec -> (None, spec). NAME may not contain '/'; a '=' (or a
    backslash) in NAME is written escaped, ``a\\=b=SPEC`` (a job file's `name` is escaped so: stored literally)."""
    m = _NAME_SPLIT.fullmatch(entry)
    if m and m.group(1).strip() and "/" not in m.group(1) and m.group(2).strip():
        return re.sub(r"\\(.)", r"\1", m.group(1).strip()), m.group(2).strip()
    return None, entry.strip()


def model_entry(name: str, spec: str) -> str:
    """The entry ``NAME=SPEC`` that parse_model_entry reads back as exactly (name, spec)."""
    return name.replace("\\", "\\\\").replace("=", "\\=") + "=" + spec


_MODEL_KEYS = {"id", "revision", "name", "base"}


def _model_entries(raw: object, path: Path) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """(model entries, (entry, base) pairs) of a job file's `models` list."""
    if not isinstance(raw, list):
        raise JobFileError(f'{path}: `models` must be a list, e.g. models = ["synth:tiny-llama"]')
    out = []
    bases = []
    for item in raw:
        if isinstance(item, str) and item.strip():
            out.append(item.strip())
            continue
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"].strip():
            raise JobFileError(f'{path}: model entry {shown(item)} must be a string or {{ id = "..." }}')
        unknown = set(item) - _MODEL_KEYS
        if unknown:
            raise JobFileError(
                f"{path}: model entry {shown(item['id'])}: unknown key(s) {sorted(unknown)} "
                f"(known: {', '.join(sorted(_MODEL_KEYS))})"
            )
        for key in ("revision", "name", "base"):
            if key in item and (
                not isinstance(item[key], str) or not item[key].strip() or key == "name" and "/" in item[key]
            ):
                raise JobFileError(
                    f"{path}: model entry {shown(item['id'])}: {key} must be a non-empty string"
                    + (" without '/'" if key == "name" else "")
                )
        spec = f"{item['id']}@{item['revision']}" if item.get("revision") else item["id"]
        out.append(model_entry(item["name"].strip(), spec) if item.get("name") else spec)
        if item.get("base"):
            bases.append((out[-1], item["base"].strip()))
    return tuple(out), tuple(bases)


def load_job(path: str | Path) -> Job:
    """Parse a job file; unknown keys are errors (a typo must not silently fall back to a default)."""
    path = Path(path)
    if not path.is_file():
        raise JobFileError(_missing_job_hint(path))
    try:
        text = read_text_limited(path, MAX_JOB_BYTES)
    except ValueError as exc:
        raise JobFileError(f"{path}: too large for a job file ({exc})") from None
    except UnicodeDecodeError:
        raise JobFileError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise JobFileError(f"{path}: cannot read the job file: {exc.strerror or exc}") from None
    depth = _nesting(text)
    if depth > MAX_JOB_DEPTH:
        raise JobFileError(f"{path}: nested {depth} levels deep; a job file needs at most {MAX_JOB_DEPTH}")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise JobFileError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise JobFileError(f"{path}: nested too deeply for a job file") from None
    _check_strings(doc, path)
    job = Job()
    top: dict[str, object] = {}
    sections: dict[str, dict[str, object]] = {}
    problems: list[str] = []  # every problem of the file at once, not the first only
    for key, value in doc.items():
        if key == "models":
            try:
                top["models"], top["bases"] = _model_entries(value, path)
            except JobFileError as exc:
                problems.append(str(exc).removeprefix(f"{path}: "))
        elif key == "base":
            if not isinstance(value, str) or not value.strip():
                problems.append(f'base must be a model spec or "previous", got {value!r}')
            else:
                top["base"] = value.strip()
        elif key == "job" and isinstance(value, dict):
            for sub, subval in value.items():
                if sub not in ("db", "output_dir"):
                    problems.append(f"unknown setting [job].{sub} (known: db, output_dir)")
                elif message := _problem(lambda sub=sub, subval=subval: replace(job, **{sub: subval})):
                    problems.append(message)
                else:
                    top[sub] = subval
        elif key in SECTIONS and isinstance(value, dict):
            known = section_keys(SECTIONS[key])
            good = {}
            for sub, subval in value.items():
                if sub not in known:
                    problems.append(f"unknown setting [{key}].{sub} (known: {', '.join(sorted(known))})")
                    continue
                message = _problem(lambda key=key, sub=sub, subval=subval: replace(getattr(job, key), **{sub: subval}))
                if message:
                    problems.append(message)
                else:
                    good[sub] = subval
            sections[key] = good
        else:
            problems.append(f"unknown key {shown(key)} (known: models, base, job, {', '.join(SECTIONS)})")
    if "db" in top and "output_dir" not in top:
        top["output_dir"] = None  # outputs beside the file's database, as on the command line
    if not problems:
        message = _problem(
            lambda: replace(job, **top, **{n: replace(getattr(job, n), **kw) for n, kw in sections.items()})
        )
        if message:
            problems.append(message)
    if len(problems) == 1:
        raise JobFileError(f"{path}: {problems[0]}")
    if problems:
        raise JobFileError(f"{path}: {len(problems)} problems: " + "; ".join(problems))
    parts = {name: replace(getattr(job, name), **kw) for name, kw in sections.items()}
    return replace(job, **top, **parts)


def _problem(build: Callable[[], object]) -> str | None:
    """The JobError message of building a part of a job, or None when it builds."""
    try:
        build()
    except JobError as exc:
        return str(exc)
    return None


MAX_JOB_BYTES = 1 << 20  # a job file lists models and settings: a megabyte is a thousand times enough
MAX_JOB_DEPTH = 8  # arrays and tables within each other (models = [{ ... }] is 2)


def _nesting(text: str) -> int:
    """How deep brackets and braces nest in TOML text, outside strings and comments (checked before the parser,
    which recurses: a 100,000-deep array would exhaust the stack)."""
    depth = deepest = 0
    quote = None
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if quote:
            if c == "\\" and quote[0] == '"':  # basic strings have escapes, literal ones do not
                i += 1
            elif text.startswith(quote, i):
                i += len(quote) - 1
                quote = None
        elif c == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif c in "\"'":
            quote = c * 3 if text.startswith(c * 3, i) else c
            i += len(quote) - 1
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth -= 1
        i += 1
    return deepest


def _check_strings(doc: object, path: Path) -> None:
    """Every string of a parsed job file, keys included, checked as text (length, control characters; whether it may
    be empty is the setting's own check)."""
    todo: list[tuple[tuple[str, ...], object]] = [((), doc)]
    while todo:
        keys, value = todo.pop()
        try:
            if isinstance(value, dict):
                for key, item in value.items():
                    check_text(f"a key in {_where(keys)}", key, empty_ok=True)
                    todo.append(((*keys, key), item))
            elif isinstance(value, list):
                todo += [(keys, item) for item in value]
            elif isinstance(value, str):
                check_text(_where(keys), value, empty_ok=True)
        except JobError as exc:
            raise JobFileError(f"{path}: {exc}") from None


def _where(keys: tuple[str, ...]) -> str:
    """A job-file key as messages name it: `[workers] address`, `models`."""
    shown_keys = [k[:40] for k in keys]
    if len(shown_keys) > 1:
        return f"[{shown_keys[0]}] {'.'.join(shown_keys[1:])}"
    return shown_keys[0] if shown_keys else "the job file"


def _missing_job_hint(path: Path) -> str:
    """'no such job file', with the likely intent when the word looks like a model."""
    word = str(path)
    if path.is_dir() or word.startswith("synth:") or (word.count("/") == 1 and not word.endswith(".toml")):
        return f"{word}: no such job file — did you mean `tpa-dist submit --models {word}`?"
    return f"{word}: no such job file (a TOML file; see jobs/smoke.toml), or use --models"

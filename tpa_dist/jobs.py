"""Declarative job files (TOML): which models, which settings, which workers, where results go."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from .errors import JobFileError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class Job:
    """A resolved submit: every knob with its default."""

    models: tuple[str, ...] = ()
    db: str = "data/tpa.duckdb"
    output_dir: str = "data/outputs"
    cpu_only: bool = False
    num_workers: int | None = None  # default: all CPUs of the cluster / threads_per_worker
    threads_per_worker: int = 1
    gpus_per_worker: float = 0.25  # 4 GPU workers share each GPU (BENCHMARKS.md: 8.4x vs 4.0x with 1)
    address: str | None = None
    sparsity_threshold: float = 1e-8
    block_mib: int = 64  # memory budget of one streamed block, per worker
    force: bool = False
    seed: int = 0
    embedding: bool = True
    k_min: int = 2
    k_max: int = 100
    k_step: int | None = None  # None: coarse-to-fine search over [k_min, k_max]
    progress: bool = True
    argv: tuple[str, ...] = field(default=(), compare=False)

    def with_overrides(self, **overrides: object) -> Job:
        """This job with every non-None override applied (CLI options win over the file)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


_SECTIONS = {
    "job": {"db", "output_dir"},
    "analysis": {"sparsity_threshold", "block_mib", "seed", "force"},
    "workers": {"cpu_only", "num_workers", "threads_per_worker", "gpus_per_worker", "address"},
}


def _model_entries(raw: object, path: Path) -> tuple[str, ...]:
    if not isinstance(raw, list):
        raise JobFileError(f"{path}: `models` must be a list")
    out = []
    for item in raw:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict) and isinstance(item.get("id"), str):
            rev = item.get("revision")
            out.append(f"{item['id']}@{rev}" if rev else item["id"])
        else:
            raise JobFileError(f"{path}: model entry {item!r} must be a string or {{id = ..., revision = ...}}")
    return tuple(out)


def load_job(path: str | Path) -> Job:
    """Parse a job file; unknown keys are errors (a typo must not silently fall back to a default)."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise JobFileError(f"{path}: no such job file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise JobFileError(f"{path}: not valid TOML: {exc}") from None
    values: dict[str, object] = {}
    known = {f.name for f in fields(Job)}
    for key, value in doc.items():
        if key == "models":
            values["models"] = _model_entries(value, path)
        elif key in _SECTIONS and isinstance(value, dict):
            for sub, subval in value.items():
                if sub not in _SECTIONS[key]:
                    raise JobFileError(f"{path}: unknown setting [{key}].{sub}")
                values[sub] = subval
        else:
            raise JobFileError(f"{path}: unknown key {key!r} (known: models, {', '.join(_SECTIONS)})")
    assert set(values) <= known
    try:
        return Job(**values)  # type: ignore[arg-type]
    except TypeError as exc:
        raise JobFileError(f"{path}: {exc}") from None

"""Resolve a --models entry (local folder, ``synth:PRESET``, Hub id[@rev]) to a local checkpoint folder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import DiskSpaceError, UnknownModelSpecError

#: What the analysis reads from a Hub repo; weights in pickle formats are never fetched.
HUB_ALLOW_PATTERNS = [
    "*.safetensors",
    "model.safetensors.index.json",
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "tokenizer.model",
    "special_tokens_map.json",
    "merges.txt",
    "vocab.json",
]


@dataclass(frozen=True)
class ModelSource:
    spec: str
    model_id: str
    path: Path
    kind: str  # local | synth | hub
    revision: str | None = None  # known up front for Hub models (commit sha)


def cache_dir() -> Path:
    """Where synthetic checkpoints are written: $TPA_DIST_CACHE or ~/.cache/tpa-dist."""
    return Path(os.environ.get("TPA_DIST_CACHE", Path.home() / ".cache" / "tpa-dist"))


def split_revision(spec: str) -> tuple[str, str | None]:
    """``org/name@rev`` -> (``org/name``, ``rev``)."""
    if "@" in spec and not spec.startswith(("/", ".")):
        name, _, rev = spec.rpartition("@")
        return name, rev or None
    return spec, None


def resolve(spec: str, seed: int = 0) -> ModelSource:
    """Find or materialize the checkpoint folder a model spec names."""
    spec = spec.strip()
    if spec.startswith("synth:"):
        from .synth import write_synthetic

        preset = spec.split(":", 1)[1]
        path = write_synthetic(preset, cache_dir() / "synth" / f"{preset}-seed{seed}", seed=seed)
        return ModelSource(spec, spec, path, "synth")
    local = Path(spec).expanduser()
    if local.exists():
        return ModelSource(spec, local.resolve().name, local.resolve(), "local")
    repo_id, revision = split_revision(spec)
    if repo_id.count("/") == 1 and all(repo_id.split("/")):
        return download(repo_id, revision, spec=spec)
    raise UnknownModelSpecError(f"{spec!r} is not a local folder, a synth:PRESET, or a Hub id like org/name[@revision]")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _check_disk(files: list, target: Path) -> None:
    """Refuse before downloading when the files still to fetch do not fit the free disk at `target`."""
    import shutil

    need = sum(f.file_size or 0 for f in files if f.will_download)
    probe = target
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if need > free:
        raise DiskSpaceError(
            f"downloading needs {need / 2**30:.2f} GiB but {probe} has {free / 2**30:.2f} GiB free; "
            "free space or point HF_HUB_CACHE / --out at a larger disk"
        )


def download(
    repo_id: str,
    revision: str | None = None,
    out: str | Path | None = None,
    *,
    spec: str | None = None,
    attempts: int = 3,
) -> ModelSource:
    """Fetch only what the analysis reads (safetensors, index, configs, tokenizer files — never pickles or
    other formats) into the Hugging Face cache, or into the plain folder `out`; resolve the commit sha.

    The total size is checked against free disk first. HF_ENDPOINT, HF_HUB_CACHE/HF_HOME, HF_TOKEN and
    HF_HUB_OFFLINE are read at call time. An interrupted transfer is retried and resumes (HTTP Range)."""
    spec = spec or (f"{repo_id}@{revision}" if revision else repo_id)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        DryRunError,
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    cache = os.environ.get("HF_HUB_CACHE") or (
        str(Path(os.environ["HF_HOME"]) / "hub") if os.environ.get("HF_HOME") else None
    )
    kwargs = dict(
        revision=revision,
        allow_patterns=HUB_ALLOW_PATTERNS,
        endpoint=os.environ.get("HF_ENDPOINT") or None,
        cache_dir=cache,
        local_dir=str(out) if out else None,
        local_files_only=_offline(),
    )
    for attempt in range(1, attempts + 1):
        try:
            sha = None
            if not _offline():
                try:
                    plan = snapshot_download(repo_id, dry_run=True, **kwargs)
                except DryRunError:
                    plan = None  # the download below says why (not found, gated, bad revision)
                if plan is not None:
                    _check_disk(plan, Path(out) if out else Path(cache or Path.home() / ".cache" / "huggingface"))
                    sha = plan[0].commit_hash if plan else None
            path = Path(snapshot_download(repo_id, **kwargs))
            return ModelSource(spec, repo_id, path, "hub", revision=sha or (None if out else path.name))
        except GatedRepoError:
            raise UnknownModelSpecError(
                f"{repo_id}: gated repository — accept its licence on the Hub and set HF_TOKEN"
            ) from None
        except RepositoryNotFoundError:
            raise UnknownModelSpecError(f"{repo_id}: not found (or private: set HF_TOKEN) — check the id") from None
        except RevisionNotFoundError:
            raise UnknownModelSpecError(f"{repo_id}: revision {revision!r} not found") from None
        except LocalEntryNotFoundError:
            raise UnknownModelSpecError(
                f"{repo_id}: not in the local Hugging Face cache and the Hub cannot be reached"
                + (" (HF_HUB_OFFLINE is set)" if _offline() else "")
            ) from None
        except DiskSpaceError:
            raise
        except Exception as exc:  # noqa: BLE001 - network errors of any HTTP stack: retry, resuming
            if attempt == attempts:
                raise UnknownModelSpecError(f"{repo_id}: download failed after {attempts} attempts: {exc}") from None
    raise AssertionError("unreachable")

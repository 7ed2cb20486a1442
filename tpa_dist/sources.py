"""Resolve a --models entry (local folder, ``synth:PRESET``, Hub id[@rev]) to a local checkpoint folder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import UnknownModelSpecError

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
        return _download(spec, repo_id, revision)
    raise UnknownModelSpecError(f"{spec!r} is not a local folder, a synth:PRESET, or a Hub id like org/name[@revision]")


def _download(spec: str, repo_id: str, revision: str | None) -> ModelSource:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        path = Path(snapshot_download(repo_id, revision=revision, allow_patterns=HUB_ALLOW_PATTERNS))
    except GatedRepoError:
        raise UnknownModelSpecError(
            f"{repo_id}: gated repository — accept its licence on the Hub and set HF_TOKEN"
        ) from None
    except RepositoryNotFoundError:
        raise UnknownModelSpecError(f"{repo_id}: not found (or private: set HF_TOKEN) — check the id") from None
    except RevisionNotFoundError:
        raise UnknownModelSpecError(f"{repo_id}: revision {revision!r} not found") from None
    return ModelSource(spec, repo_id, path, "hub", revision=path.name)

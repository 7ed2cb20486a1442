"""Resolve a --models entry (local folder, ``synth:PRESET``, Hub id[@rev]) to a local checkpoint folder."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from tpa_dist import constants
from tpa_dist.errors import (
    DiskSpaceError,
    DownloadError,
    GatedModelError,
    ModelFolderError,
    ModelNotFoundError,
    UnknownModelSpecError,
    UnknownPresetError,
    UnsupportedFormatError,
    unknown_preset_message,
)
from tpa_dist.sources.hub import is_disk_full

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
    pending: tuple = ()  # remote.PendingShard: Hub shards still to download (analysis streams them)
    remote: dict = field(default_factory=dict, hash=False)  # their headers, read by HTTP Range
    fetch: dict = field(default_factory=dict, hash=False)  # hf_hub_download arguments for the pending shards


def cache_dir() -> Path:
    """Where synthetic checkpoints are written: $TPA_DIST_CACHE or ~/.cache/tpa-dist."""
    return constants.cache_root()


def split_revision(spec: str) -> tuple[str, str | None]:
    """``org/name@rev`` -> (``org/name``, ``rev``)."""
    if "@" in spec and not spec.startswith(("/", ".")):
        name, _, rev = spec.rpartition("@")
        return name, rev or None
    return spec, None


def resolve(
    spec: str, seed: int = 0, stream: bool = False, name: str | None = None, census: Path | None = None
) -> ModelSource:
    """Find or materialize the checkpoint folder a model spec names; `name` overrides the stored model_id. With
    `stream`, a Hub model's shards are left to download during the analysis (see open_hub_stream), into `census`
    when given (a census on a disk budget)."""
    spec = spec.strip()
    source = _resolve(spec, seed, stream, census)
    return replace(source, model_id=name) if name else source


def _resolve(spec: str, seed: int, stream: bool, census: Path | None = None) -> ModelSource:
    if spec.startswith("synth:"):
        from tpa_dist.sources.synth.derived import all_presets, write_any

        preset = spec.split(":", 1)[1]
        if preset not in all_presets():
            raise UnknownPresetError(unknown_preset_message(preset, all_presets()))
        path = write_any(preset, cache_dir() / "synth" / f"{preset}-seed{seed}", seed=seed)
        return ModelSource(spec, spec, path, "synth")
    local = Path(spec).expanduser()
    if local.exists():
        return ModelSource(spec, local.resolve().name, local.resolve(), "local")
    if _looks_local(spec, local):
        raise ModelFolderError(str(local), "no such folder or .safetensors file")
    repo_id, revision = split_revision(spec)
    if repo_id.count("/") == 1 and all(repo_id.split("/")):
        _check_hub_id(spec, repo_id)
        if stream:
            return open_hub_stream(repo_id, revision, spec=spec, census=census)
        return download(repo_id, revision, spec=spec)
    raise UnknownModelSpecError(
        f"{spec!r} is not a local folder, a synth:PRESET, or a Hub id like org/name[@revision] (no such folder)"
    )


def _check_hub_id(spec: str, repo_id: str) -> None:
    """A Hub id the Hub could hold (huggingface_hub's own rule), before any request: `org/..` is named as a spec
    that cannot work, not as a download that failed three times."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid"
        raise UnknownModelSpecError(f"{spec!r} is not a valid Hub id: {first}") from None


def _looks_local(spec: str, path: Path) -> bool:
    """A path the user meant as local: absolute, ./ ../ ~, a .safetensors file, or one whose parent folder exists
    (a typo'd `minilm/model` is a missing folder, not a Hub miss)."""
    if spec.startswith(("/", "./", "../", "~")) or spec.endswith(".safetensors") or "\\" in spec:
        return True
    parent = path.parent
    return str(parent) not in ("", ".") and parent.is_dir()


def _offline() -> bool:
    return constants.hub_offline()


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


def _hub_kwargs(revision: str | None, out: str | Path | None) -> dict:
    """snapshot_download arguments from the environment, read at call time."""
    cache = constants.hub_cache()
    return dict(
        revision=revision,
        allow_patterns=HUB_ALLOW_PATTERNS,
        endpoint=constants.hf_endpoint(),
        cache_dir=cache,
        local_dir=str(out) if out else None,
        local_files_only=_offline(),
    )


@contextmanager
def _hub_errors(repo_id: str, revision: str | None) -> Iterator[None]:
    """Turn huggingface_hub's errors into messages that say what to do."""
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        yield
    except GatedRepoError:
        raise GatedModelError(f"{repo_id}: gated repository — accept its licence on the Hub and set HF_TOKEN") from None
    except RepositoryNotFoundError:
        raise ModelNotFoundError(f"{repo_id}: not found (or private: set HF_TOKEN) — check the id") from None
    except RevisionNotFoundError:
        raise ModelNotFoundError(f"{repo_id}: revision {revision!r} not found") from None
    except LocalEntryNotFoundError:
        raise UnknownModelSpecError(
            f"{repo_id}: not in the local Hugging Face cache and the Hub cannot be reached"
            + (" (HF_HUB_OFFLINE is set)" if _offline() else "")
        ) from None


def _plan(repo_id: str, kwargs: dict, target: Path, check_disk: bool = True) -> list | None:
    """The dry-run file list (sizes, cache state, commit); free disk checked (not for a census on a budget: its
    shards come and go). None when the Hub refuses (the real download then says why)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import DryRunError

    try:
        plan = snapshot_download(repo_id, dry_run=True, **kwargs)
    except DryRunError:
        return None
    if check_disk:
        _check_disk(plan, target)
    return plan


def _refuse_pickle_only(repo_id: str, revision: str | None, endpoint: str | None) -> None:
    """A repo without safetensors: say so before fetching anything, naming its pickle files if it has some."""
    import fnmatch

    from huggingface_hub import HfApi

    from tpa_dist.checkpoint.catalog import PICKLE_PATTERNS

    files = HfApi(endpoint=endpoint).list_repo_files(repo_id, revision=revision)
    pickles = sorted(f for f in files if any(fnmatch.fnmatch(f.rsplit("/", 1)[-1], p) for p in PICKLE_PATTERNS))
    if pickles:
        raise UnsupportedFormatError(
            f"{repo_id}@{revision}",
            f"only pickle weights on the Hub ({', '.join(pickles[:3])}); tpa-dist never downloads or unpickles "
            "them. Use a revision with safetensors (the Hub's conversion bot opens one as a pull request: "
            f"{repo_id}@refs/pr/N) or convert in a sandbox you trust",
        )
    raise UnsupportedFormatError(f"{repo_id}@{revision}", "no *.safetensors weights in this repository")


def _target(out: str | Path | None, kwargs: dict) -> Path:
    return Path(out) if out else Path(kwargs["cache_dir"] or Path.home() / ".cache" / "huggingface")


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
    from huggingface_hub import snapshot_download

    spec = spec or (f"{repo_id}@{revision}" if revision else repo_id)
    kwargs = _hub_kwargs(revision, out)
    for attempt in range(1, attempts + 1):
        try:
            with _hub_errors(repo_id, revision):
                plan = None if _offline() else _plan(repo_id, kwargs, _target(out, kwargs))
                sha = plan[0].commit_hash if plan else None
                if plan is not None and not any(f.filename.endswith(".safetensors") for f in plan):
                    _refuse_pickle_only(repo_id, sha or revision, kwargs["endpoint"])
                path = Path(snapshot_download(repo_id, **kwargs))
            return ModelSource(spec, repo_id, path, "hub", revision=sha or (None if out else path.name))
        except (UnknownModelSpecError, DiskSpaceError, UnsupportedFormatError, DownloadError):
            raise
        except Exception as exc:  # noqa: BLE001 - network errors of any HTTP stack: retry, resuming
            if is_disk_full(exc):
                raise DiskSpaceError(
                    f"disk full while downloading {repo_id} into {_target(out, kwargs)}: free space (or point "
                    "HF_HUB_CACHE / --out at a larger disk) and run again — the partial file resumes"
                ) from None
            if attempt == attempts:
                raise DownloadError(f"{repo_id}: download failed after {attempts} attempts: {exc}") from None
    raise AssertionError("unreachable")


_SHA = re.compile(r"[0-9a-f]{40}")


def census_path(census: Path, repo_id: str, sha: str | None, filename: str) -> Path:
    """Where hf_hub_download puts `filename` of `repo_id` at commit `sha` in the census's cache — refused (one
    DownloadError naming the repo) unless the commit is a sha and the file's name stays inside its snapshot: both
    come from the server, and a hostile mirror must not place a shard outside the cache."""
    parts = PurePosixPath(filename).parts
    if not (sha and _SHA.fullmatch(sha)) or not parts or ".." in parts or filename.startswith("/") or "\\" in filename:
        raise DownloadError(f"{repo_id}: the Hub listed {filename!r} at commit {sha!r}: not a file of one commit")
    return census / f"models--{repo_id.replace('/', '--')}" / "snapshots" / sha / Path(*parts)


def open_hub_stream(
    repo_id: str, revision: str | None = None, *, spec: str | None = None, census: Path | None = None
) -> ModelSource:
    """Prepare a Hub model for analysis while it downloads: small files (config, index, tokenizer) are
    fetched now, each missing shard's header is read by HTTP Range, and the shards themselves are left to a
    ShardFetcher (`source.pending`). Offline, or with everything cached, this is `download`. With `census` (a
    census's own cache, --max-cache-gib), the shards missing from the Hugging Face cache go there instead, on a
    budget (budget.py); those already in the Hugging Face cache are read in place."""
    from huggingface_hub import snapshot_download

    from tpa_dist.sources.hub import PendingShard, read_remote_header

    spec = spec or (f"{repo_id}@{revision}" if revision else repo_id)
    if _offline():
        return download(repo_id, revision, spec=spec)
    kwargs = _hub_kwargs(revision, None)
    with _hub_errors(repo_id, revision):
        plan = _plan(repo_id, kwargs, _target(None, kwargs), check_disk=census is None)
    sha = plan[0].commit_hash if plan else None

    def where(f: object) -> str:
        if census is None:
            return str(f.local_path)
        return str(census_path(census, repo_id, sha, f.filename))

    pending = sorted(  # in file order: the dry run lists them in whatever order its threads finished
        PendingShard(f.filename, where(f), int(f.file_size or 0))
        for f in plan or []
        if f.filename.endswith(".safetensors") and f.will_download
    )
    if not plan or not pending:
        return download(repo_id, revision, spec=spec)
    small = dict(kwargs, revision=sha, allow_patterns=[p for p in HUB_ALLOW_PATTERNS if p != "*.safetensors"])
    with _hub_errors(repo_id, revision):
        path = Path(snapshot_download(repo_id, **small))
    path.mkdir(parents=True, exist_ok=True)
    headers = {s.filename: read_remote_header(repo_id, s, sha, kwargs["endpoint"]) for s in pending}
    fetch = {k: kwargs[k] for k in ("endpoint", "cache_dir", "local_dir")}
    if census is not None:
        fetch["cache_dir"] = str(census)
    return ModelSource(spec, repo_id, path, "hub", revision=sha, pending=tuple(pending), remote=headers, fetch=fetch)

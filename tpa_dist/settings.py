"""Validated settings: one frozen dataclass per job-file section, each field's default, type and range in one place.

`Job` (jobs.py) holds one of each; job files, CLI flags and the Python API all build these same objects, and
every value is checked here with the key's name in the message. Workers receive `AnalysisSettings` whole.
"""

from __future__ import annotations

import hashlib
import json
import math
import shlex
from dataclasses import MISSING, dataclass, field, fields

from tpa_dist.errors import JobError

METHOD_VERSION = "gram_eigvalsh_f64/1"
#: the --rmt computation; bumped when the same seed draws another shuffle (2: spilled shuffles in 1 Mi buckets), so a
#: resumed run recomputes rather than mixing draws
RMT_METHOD = "ww-0.7.7/2"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
DEFAULT_SPARSITY_THRESHOLD = 1e-8  # |w| at or below this counts as zero
DEFAULT_BLOCK_MIB = 64  # memory budget of one streamed block, per worker
DEFAULT_GPUS_PER_WORKER = 1.0  # one GPU worker per GPU ...
DEFAULT_GPU_STREAMS = 4  # ... running 4 batches at once on CUDA streams (BENCHMARKS.md: 8.4x vs 4.0x with 1)


def setting(
    default: object,
    kind: str,
    *,
    flag: str | None = None,
    lo: float | None = None,
    hi: float | None = None,
    nullable: bool = False,
    key: bool = True,
) -> object:
    """A dataclass field with its checks: kind is bool|int|float|str; lo/hi inclusive bounds; `flag` the CLI
    option; `key=False` for fields that job files do not set."""
    meta = {"kind": kind, "flag": flag, "lo": lo, "hi": hi, "nullable": nullable, "key": key}
    return field(default=default, metadata=meta)


_KIND_WORD = {"bool": "true or false", "int": "an integer", "float": "a number", "str": "a string"}


def check(section: str, obj: object) -> None:
    """Type- and range-check every field of a settings dataclass; floats given as ints are converted."""
    for f in fields(obj):
        meta = f.metadata
        if "kind" not in meta:
            continue
        value = getattr(obj, f.name)
        where = f"[{section}] {f.name}" + (f" ({meta['flag']})" if meta["flag"] else "")
        if value is None:
            if meta["nullable"]:
                continue
            raise JobError(f"{where} must be {_KIND_WORD[meta['kind']]}, not empty")
        kind = meta["kind"]
        ok = {
            "bool": isinstance(value, bool),
            "int": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, (int, float)) and not isinstance(value, bool),
            "str": isinstance(value, str),
        }[kind]
        if not ok:
            raise JobError(f"{where} must be {_KIND_WORD[kind]}, got {shown(value)} ({type(value).__name__})")
        if kind == "float":
            value = float(value)
            if not math.isfinite(value):
                raise JobError(f"{where} must be a finite number, got {shown(value)}")
            object.__setattr__(obj, f.name, value)
        if kind == "str":
            check_text(where, value)
        lo, hi = meta["lo"], meta["hi"]
        if kind == "int" and not INT64_MIN <= value <= INT64_MAX:  # the 64-bit fields it is stored in, numpy's seeds
            raise JobError(f"{where} must be a 64-bit integer (at most {INT64_MAX:,}), got {shown(value)}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            bound = (
                f"between {lo:g} and {hi:g}"
                if lo is not None and hi is not None
                else (f"≥ {lo:g}" if lo is not None else f"≤ {hi:g}")
            )
            raise JobError(f"{where} must be {bound}, got {shown(value)}")


def shown(value: object, limit: int = 80) -> str:
    """A value as an error message shows it: its repr, cut to `limit` characters (a 100 MB string is not echoed)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 1]}… ({len(text):,} characters)"


MAX_TEXT = 4096  # characters of any text setting (a path, a model spec, an address)


def check_text(where: str, value: str, empty_ok: bool = False) -> None:
    """A text setting: not empty, at most MAX_TEXT characters, no NUL or other control characters (a NUL in a path
    would silently cut it; a 100 MB string would be echoed and stored)."""
    if not value.strip() and not empty_ok:
        raise JobError(f"{where} must not be empty")
    if len(value) > MAX_TEXT:
        raise JobError(f"{where} is {len(value):,} characters long; at most {MAX_TEXT:,}")
    bad = next((c for c in value if ord(c) < 32 or ord(c) == 127), None)
    if bad is not None:
        raise JobError(f"{where} contains the control character {bad!r}; remove it")


def section_keys(cls: type) -> set[str]:
    """The job-file keys of a settings section."""
    return {f.name for f in fields(cls) if f.metadata.get("key", False)}


def defaults(cls: type) -> dict[str, object]:
    return {f.name: f.default for f in fields(cls) if f.default is not MISSING}


@dataclass(frozen=True)
class AnalysisSettings:
    """[analysis]: what every worker needs to analyze a matrix. Only `sparsity_threshold` changes results, so
    only it (with the method version) keys stored rows: a resume never mixes settings."""

    sparsity_threshold: float = setting(DEFAULT_SPARSITY_THRESHOLD, "float", flag="--sparsity-threshold", lo=0.0)
    block_mib: int = setting(DEFAULT_BLOCK_MIB, "int", flag="--block-mib", lo=1, hi=1 << 20)
    seed: int = setting(0, "int", flag="--seed", lo=0)  # of synth: presets
    force: bool = setting(False, "bool", flag="--force")
    threads: int = setting(1, "int", lo=1, hi=1024, key=False)  # BLAS threads per worker ([workers])

    def __post_init__(self) -> None:
        check("analysis", self)

    @property
    def block_bytes(self) -> int:
        return self.block_mib << 20

    def settings_id(self) -> str:
        payload = json.dumps(self.as_dict(), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

    def as_dict(self) -> dict[str, object]:
        return {"sparsity_threshold": self.sparsity_threshold, "method": METHOD_VERSION}


EMBEDDING_METRICS = ("cosine", "euclidean")


@dataclass(frozen=True)
class EmbeddingSettings:
    """[embedding]: the k-means sweep over the token embeddings."""

    enabled: bool = setting(True, "bool", flag="--no-embedding")
    k_min: int = setting(2, "int", flag="--k-range", lo=2)
    k_max: int = setting(100, "int", flag="--k-range", lo=2, hi=100_000)
    k_step: int | None = setting(None, "int", flag="--k-step", lo=1, nullable=True)  # None: coarse-to-fine
    include_special: bool = setting(False, "bool", flag="--include-special-tokens")
    seed: int = setting(0, "int", flag="--seed", lo=0)  # of k-means
    representatives: int = setting(10, "int", lo=1, hi=1000)
    silhouette_sample: int = setting(2000, "int", lo=10, hi=1_000_000)
    # cosine: k-means on unit-normalized rows (how token vectors are compared); euclidean: on the raw rows, whose
    # norms track token frequency and would otherwise decide the clusters
    metric: str = setting("cosine", "str", flag="--embedding-metric")

    def __post_init__(self) -> None:
        check("embedding", self)
        if self.metric not in EMBEDDING_METRICS:
            raise JobError(
                f"[embedding] metric must be one of {', '.join(EMBEDDING_METRICS)}, got {shown(self.metric)}"
                " (--embedding-metric)"
            )
        if self.k_min > self.k_max:
            raise JobError(f"[embedding] k_min ({self.k_min}) must not exceed k_max ({self.k_max}) (--k-range)")


@dataclass(frozen=True)
class WorkerSettings:
    """[workers]: where and how the analysis runs."""

    cpu_only: bool = setting(False, "bool", flag="--cpu-only")
    num_workers: int | None = setting(None, "int", flag="--num-workers", lo=1, hi=100_000, nullable=True)
    threads_per_worker: int = setting(1, "int", flag="--threads-per-worker", lo=1, hi=1024)
    gpus_per_worker: float = setting(DEFAULT_GPUS_PER_WORKER, "float", flag="--gpus-per-worker", lo=0.01, hi=8.0)
    gpu_streams: int = setting(DEFAULT_GPU_STREAMS, "int", flag="--gpu-streams", lo=1, hi=64)
    address: str | None = setting(None, "str", flag="--address", nullable=True)  # None: RAY_ADDRESS or local
    # on a cluster: CPU / GPU workers asked of Ray's autoscaler (None: one CPU worker per 4 tasks up to 256, and one
    # GPU worker when there are matrices and GPUs are not excluded); nodes that join are used as they come
    request_cpus: int | None = setting(None, "int", flag="--request-cpus", lo=0, hi=100_000, nullable=True)
    request_gpus: int | None = setting(None, "int", flag="--request-gpus", lo=0, hi=100_000, nullable=True)
    # how long batches that no live worker can take wait for one (a node to join) before they fail
    wait_for_workers_s: float = setting(600.0, "float", flag="--wait-for-workers", lo=0.0, hi=7 * 86400.0)

    def __post_init__(self) -> None:
        check("workers", self)


@dataclass(frozen=True)
class DeltaSettings:
    """[delta]: how a fine-tune is compared with its base (--base): the subspace change's parameters, after
    Shuttleworth et al., *LoRA vs Full Fine-tuning: An Illusion of Equivalence* (2024)."""

    subspace_rank: int = setting(16, "int", lo=1, hi=1_000_000)  # r of the principal angles
    intruder_k: int = setting(10, "int", lo=1, hi=1_000_000)  # top-k tuned singular vectors examined
    intruder_epsilon: float = setting(0.5, "float", lo=0.0, hi=1.0)  # |cos| below this with every base vector
    subspace: bool = setting(True, "bool")  # principal angles and intruders (two more Grams and eigh per pair)

    def __post_init__(self) -> None:
        check("delta", self)

    def as_dict(self) -> dict[str, object]:
        return {
            "subspace_rank": self.subspace_rank,
            "intruder_k": self.intruder_k,
            "intruder_epsilon": self.intruder_epsilon,
            "subspace": self.subspace,
        }


RMT_FITS = ("PL", "TPL", "E_TPL")
RMT_FINGER_FIXES = ("none", "xmin_peak", "clip_xmax")


@dataclass(frozen=True)
class RmtSettings:
    """[rmt]: the random-matrix analyses WeightWatcher's analyze() offers, per matrix (compute/rmt.py), on with
    --rmt; each part can be switched off. `fit`/`fix_fingers` choose the power-law fit as WeightWatcher's options of
    the same names do. Everything but `enabled` keys the stored rows (`rmt_id`), so a resume never mixes settings."""

    enabled: bool = setting(False, "bool", flag="--rmt")
    mp_fit: bool = setting(True, "bool")  # Marchenko–Pastur fit of the ESD: bulk edge, spikes, mp_softrank
    randomize: bool = setting(True, "bool")  # the ESD of the element-wise shuffled matrix: correlation traps
    detx: bool = setting(True, "bool")  # the detX = 1 / ERG condition
    vectors: bool = setting(True, "bool")  # eigenvector localization (bulk vs tail)
    seed: int = setting(0, "int", flag="--seed", lo=0)  # of the shuffles (with each matrix's key)
    fit: str = setting("PL", "str")  # PL | TPL (truncated power law) | E_TPL (TPL with xmin at the ESD's peak)
    fix_fingers: str = setting("none", "str")  # none | xmin_peak | clip_xmax
    max_fingers: int = setting(10, "int", lo=1, hi=1000)
    finger_thresh: float = setting(1.0, "float", lo=0.0)
    tolerance: float = setting(1e-6, "float", lo=0.0)  # weak_rank_loss: eigenvalues below this

    def __post_init__(self) -> None:
        check("rmt", self)
        if self.fit not in RMT_FITS:
            raise JobError(f"[rmt] fit must be one of {', '.join(RMT_FITS)}, got {shown(self.fit)}")
        if self.fix_fingers not in RMT_FINGER_FIXES:
            raise JobError(
                f"[rmt] fix_fingers must be one of {', '.join(RMT_FINGER_FIXES)}, got {shown(self.fix_fingers)}"
            )
        if self.fit == "E_TPL" and self.fix_fingers == "clip_xmax":
            raise JobError('[rmt] fit = "E_TPL" fixes fingers by xmin_peak; it cannot be combined with clip_xmax')

    def as_dict(self) -> dict[str, object]:
        return {**{f.name: getattr(self, f.name) for f in fields(self) if f.name != "enabled"}, "method": RMT_METHOD}

    def rmt_id(self) -> str:
        payload = json.dumps(self.as_dict(), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


HUB_SORTS = ("downloads", "likes", "created_at", "last_modified", "trending_score")
DEFAULT_LIMIT = 100
MAX_LIMIT = 100_000


@dataclass(frozen=True)
class HubQuery:
    """What `HfApi.list_models` is asked: `author=ORG search=TEXT filter=TAG… sort=KEY limit=N` (filter repeats,
    e.g. ``filter=base_model:finetune:Qwen/Qwen3-4B``); models come most-first by `sort` (downloads by default)."""

    author: str | None = None
    search: str | None = None
    filters: tuple[str, ...] = ()
    sort: str = "downloads"
    limit: int = DEFAULT_LIMIT

    def text(self) -> str:
        """The query written back in its own grammar, keys in a fixed order (the cohort's default name)."""
        parts = [f"author={self.author}"] if self.author else []
        parts += [f"search={self.search}"] if self.search else []
        parts += [f"filter={f}" for f in self.filters]
        parts += [f"sort={self.sort}", f"limit={self.limit}"]
        return " ".join(shlex.quote(p) for p in parts)


def parse_hub_query(text: str) -> HubQuery:
    """`author=Qwen filter=base_model:finetune:Qwen/Qwen3-4B limit=50` -> HubQuery; one JobError naming the part
    that is wrong. Values with spaces are quoted as in a shell (`search='llama 2'`)."""
    where = "--hub-query"
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise JobError(f"{where} {shown(text)}: {exc}") from None
    values: dict[str, object] = {"filters": []}
    for word in words:
        key, eq, value = word.partition("=")
        if not eq or not value.strip():
            raise JobError(f"{where}: {shown(word)} is not KEY=VALUE (keys: author, search, filter, sort, limit)")
        value = value.strip()
        if key == "filter":
            values["filters"].append(value)  # type: ignore[union-attr]
        elif key in ("author", "search"):
            if key in values:
                raise JobError(f"{where}: {key} given twice")
            values[key] = value
        elif key == "sort":
            if value not in HUB_SORTS:
                raise JobError(f"{where}: sort must be one of {', '.join(HUB_SORTS)}, got {shown(value)}")
            values["sort"] = value
        elif key == "limit":
            if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
                raise JobError(f"{where}: limit must be an integer from 1 to {MAX_LIMIT:,}, got {shown(value)}")
            values["limit"] = int(value)
        else:
            raise JobError(f"{where}: unknown key {shown(key)} (keys: author, search, filter, sort, limit)")
    if not (values.get("author") or values.get("search") or values["filters"]):
        raise JobError(f"{where} {shown(text)}: give at least one of author=, search=, filter=")
    values["filters"] = tuple(values["filters"])  # type: ignore[arg-type]
    return HubQuery(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class CohortSettings:
    """[cohort]: a census's models enumerated rather than listed — from a file of specs or a Hub query — and stored
    under a name (sources/cohort.py). A stored Hub listing is reused unless `relist`; `name` alone re-runs it."""

    name: str | None = setting(None, "str", flag="--cohort", nullable=True)  # default: the file or the query
    models_from: str | None = setting(None, "str", flag="--models-from", nullable=True)
    hub_query: str | None = setting(None, "str", flag="--hub-query", nullable=True)
    relist: bool = setting(False, "bool", flag="--relist")
    # Hub shards fetched just in time into a cache the census owns (beside the database) and deleted once stored,
    # never more than this many GiB on disk at once (None: the Hugging Face cache, every shard kept)
    max_cache_gib: float | None = setting(None, "float", flag="--max-cache-gib", lo=1e-6, hi=1e6, nullable=True)

    def __post_init__(self) -> None:
        check("cohort", self)
        if self.models_from and self.hub_query:
            raise JobError("[cohort] give models_from (--models-from) or hub_query (--hub-query), not both")
        if self.hub_query:
            parse_hub_query(self.hub_query)
        if self.relist and not self.hub_query:
            raise JobError("[cohort] relist (--relist) lists a Hub query again: give hub_query (--hub-query)")

    @property
    def enabled(self) -> bool:
        return bool(self.name or self.models_from or self.hub_query)


SECTIONS: dict[str, type] = {
    "analysis": AnalysisSettings,
    "embedding": EmbeddingSettings,
    "workers": WorkerSettings,
    "delta": DeltaSettings,
    "rmt": RmtSettings,
    "cohort": CohortSettings,
}

__all__ = [
    "METHOD_VERSION",
    "RMT_METHOD",
    "SECTIONS",
    "AnalysisSettings",
    "CohortSettings",
    "HubQuery",
    "DeltaSettings",
    "EmbeddingSettings",
    "RmtSettings",
    "WorkerSettings",
    "check",
    "parse_hub_query",
]

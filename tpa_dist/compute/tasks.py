"""Turn catalog tensors into analysis tasks (one per matrix or expert slice) and batch them for workers."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from tpa_dist.checkpoint.catalog import TensorInfo
from tpa_dist.checkpoint.dtypes import FLOAT_DTYPES, ITEMSIZE
from tpa_dist.checkpoint.reader import Region
from tpa_dist.settings import METHOD_VERSION, AnalysisSettings, DeltaSettings, RmtSettings  # noqa: F401


@dataclass(frozen=True)
class MatrixTask:
    """Everything a worker needs to read and analyze one matrix (or a non-matrix tensor's statistics)."""

    model_id: str
    revision: str
    matrix_key: str  # param_name, or param_name[e] for an expert slice of a 3-D tensor
    param_name: str
    kind: str  # matrix | vector | tensor | buffer (integer/boolean: statistics only) | skipped
    region: Region
    shape: tuple[int, ...]
    shard: str
    dtype: str
    layer_index: int | None
    block_type: str
    expert_index: int | None
    note: str | None = None  # why a tensor is skipped (kind "skipped")
    hub: tuple[str, str] | None = None  # (repo id, commit sha): a node that cannot see `shard` fetches it
    sizes: tuple[tuple[str, int], ...] = ()  # (path, bytes) of the files it reads, known when planned (a Hub model)
    synth: tuple[str, int] | None = None  # (preset, seed): a node that cannot see `shard` writes the preset itself
    rmt: RmtSettings | None = None  # --rmt: WeightWatcher's analyses too (compute/rmt_task.py)

    @property
    def nbytes(self) -> int:
        return self.region.nbytes

    @property
    def matrix_shape(self) -> tuple[int, int]:
        """(rows, cols) of the matrix analyzed, as the layer's weight: a packed GPTQ/AWQ layer is dequantized as
        [in, out] but is the (out, in) weight of its module, like its unquantized original."""
        r = self.region
        return (r.cols, r.rows) if r.packed is not None else (r.rows, r.cols)

    @property
    def cost(self) -> float:
        """Relative compute cost: Gram flops m·n² plus eigvalsh n³ (n the smaller side)."""
        if self.kind != "matrix":
            return float(self.region.rows)
        m, n = max(self.region.rows, self.region.cols), min(self.region.rows, self.region.cols)
        if self.rmt is not None:  # the shuffled matrix's Gram and eigvalsh, and eigh with vectors
            return 2.0 * m * n * n + 12.0 * n**3
        return float(m) * n * n + 4.0 * n**3


@dataclass(frozen=True)
class LoraFactors:
    """A LoRA update of one matrix: ΔW = scale · B·A (`transposed`: (B·A)ᵀ, for weights stored [in, out])."""

    a: Region  # r × in
    b: Region  # out × r
    scale: float
    transposed: bool = False


@dataclass(frozen=True)
class DeltaTask:
    """ΔW = tuned − base of one matrix present in both models with the same shape (delta.py)."""

    tuned: MatrixTask
    base: MatrixTask
    settings: DeltaSettings
    kind: str = "delta"
    base_norms: tuple[float, float] | None = None  # (‖W_b‖_F, ‖W_b‖₂) from the base's stored analysis
    lora: LoraFactors | None = None  # an adapter's update: `tuned` then names the adapted matrix, its data is these

    model_id = property(lambda self: self.tuned.model_id)
    revision = property(lambda self: self.tuned.revision)
    matrix_key = property(lambda self: self.tuned.matrix_key)
    region = property(lambda self: self.tuned.region)  # the scheduler's shard locality and batching
    shard = property(lambda self: self.tuned.shard)
    hub = property(lambda self: self.tuned.hub)
    synth = property(lambda self: self.tuned.synth)

    @property
    def nbytes(self) -> int:
        return self.tuned.nbytes + self.base.nbytes

    @property
    def grams(self) -> int:
        """Gram matrices its pass accumulates: ΔᵀΔ, W_tᵀW_t for the subspace metrics, W_bᵀW_b unless both the
        subspace metrics are off and the base's norms are stored."""
        return 1 + int(self.settings.subspace) + int(self.settings.subspace or self.base_norms is None)

    @property
    def cost(self) -> float:
        """A Gram update per block pair and an eigen-solve per Gram."""
        return self.grams * self.tuned.cost


@dataclass(frozen=True)
class EmbeddingTask:
    """One embedding matrix (or an untied output head) to cluster: the worker reads it itself, like a matrix, and
    uses its node's CPUs (the embedding phase runs alone). The vocabulary travels with it (the driver read the
    tokenizer)."""

    model_id: str
    revision: str
    info: TensorInfo
    vocab: object  # checkpoint.vocab.Vocab | None
    settings: object  # settings.EmbeddingSettings
    hub: tuple[str, str] | None = None
    synth: tuple[str, int] | None = None
    kind: str = "embedding"

    @property
    def matrix_key(self) -> str:
        return self.info.param_name

    @property
    def shard(self) -> str:
        return self.info.shard

    @property
    def nbytes(self) -> int:
        return self.info.nbytes


Task = MatrixTask | DeltaTask | EmbeddingTask


def task_path(task: Task) -> str:
    """The file a task reads first (shard locality is decided by it)."""
    return task.info.path if isinstance(task, EmbeddingTask) else task.region.path  # a ΔW pair: its tuned matrix


def task_paths(task: Task) -> set[str]:
    """Every file a task reads: its shard, and those of its FP8 scale or GPTQ/AWQ companions (of both models for
    a delta)."""
    if isinstance(task, EmbeddingTask):
        return {task.info.path}
    if isinstance(task, DeltaTask):
        if task.lora is not None:
            return {task.lora.a.path, task.lora.b.path} | task_paths(task.base)
        return task_paths(task.tuned) | task_paths(task.base)
    region = task.region
    paths = {region.path}
    if region.scale is not None:
        paths.add(region.scale.path)
    packed = region.packed
    if packed is not None:
        paths |= {t.path for t in (packed.qweight, packed.qzeros, packed.scales, packed.g_idx) if t is not None}
    return paths


def relocate(task: Task, moved: dict[str, str]) -> Task:
    """The same task reading its files from new paths (`moved`: old path -> new), companions included."""
    from dataclasses import replace

    if isinstance(task, EmbeddingTask):
        return replace(task, info=replace(task.info, path=moved.get(task.info.path, task.info.path)))
    if isinstance(task, DeltaTask):
        lora = task.lora
        if lora is not None:
            lora = replace(
                lora,
                a=replace(lora.a, path=moved.get(lora.a.path, lora.a.path)),
                b=replace(lora.b, path=moved.get(lora.b.path, lora.b.path)),
            )
        return replace(task, tuned=relocate(task.tuned, moved), base=relocate(task.base, moved), lora=lora)

    def at(obj):  # noqa: ANN001, ANN202 - a Region or TensorInfo
        return replace(obj, path=moved.get(obj.path, obj.path)) if obj is not None else None

    region = task.region
    packed = region.packed
    if packed is not None:
        packed = replace(
            packed,
            qweight=at(packed.qweight),
            qzeros=at(packed.qzeros),
            scales=at(packed.scales),
            g_idx=at(packed.g_idx),
        )
    return replace(task, region=replace(at(region), scale=at(region.scale), packed=packed))


def tasks_for_tensor(model_id: str, revision: str, t: TensorInfo) -> Iterator[MatrixTask]:
    """One task per 2-D matrix, one per expert slice of a 3-D expert tensor, one stats task otherwise."""
    common = dict(
        model_id=model_id,
        revision=revision,
        param_name=t.param_name,
        shape=t.shape,
        shard=t.shard,
        dtype=t.dtype,
        layer_index=t.layer_index,
        block_type=t.block_type,
    )
    if t.dtype not in FLOAT_DTYPES:  # integer/boolean buffers (position ids, masks): statistics only
        region = Region(t.param_name, t.path, t.start, t.dtype, t.numel, 1)
        yield MatrixTask(matrix_key=t.param_name, kind="buffer", region=region, expert_index=t.expert_index, **common)
    elif t.ndim == 2:
        region = Region(t.param_name, t.path, t.start, t.dtype, t.shape[0], t.shape[1])
        yield MatrixTask(matrix_key=t.param_name, kind="matrix", region=region, expert_index=t.expert_index, **common)
    elif t.ndim == 3 and (t.block_type == "moe" or "expert" in t.param_name):
        experts, rows, cols = t.shape
        step = rows * cols * ITEMSIZE[t.dtype]
        for e in range(experts):
            key = f"{t.param_name}[{e}]"
            region = Region(key, t.path, t.start + e * step, t.dtype, rows, cols)
            yield MatrixTask(matrix_key=key, kind="matrix", region=region, expert_index=e, **common)
    else:
        region = Region(t.param_name, t.path, t.start, t.dtype, t.numel, 1)
        kind = "vector" if t.ndim == 1 else "tensor"
        yield MatrixTask(matrix_key=t.param_name, kind=kind, region=region, expert_index=t.expert_index, **common)


def batch_tasks(
    tasks: Iterable[MatrixTask], *, workers: int = 1, max_tasks: int = 64, min_cost: float = 2e8
) -> list[list[MatrixTask]]:
    """Largest first; small tasks grouped so each batch is worth a round trip to a worker, while leaving
    at least ~4 batches per worker so that every worker (and node) gets a share."""
    ordered = sorted(tasks, key=lambda t: t.cost, reverse=True)
    max_tasks = max(1, min(max_tasks, -(-len(ordered) // (4 * max(1, workers)))))
    # big tasks stay largest-first; small ones are grouped shard by shard (one file per batch, mostly)
    big = [t for t in ordered if t.cost >= min_cost]
    small = sorted((t for t in ordered if t.cost < min_cost), key=lambda t: (t.region.path, -t.cost))
    ordered = big + small
    batches: list[list[MatrixTask]] = []
    current: list[MatrixTask] = []
    cost = 0.0
    for task in ordered:
        if task.cost >= min_cost:
            batches.append([task])
            continue
        if current and current[-1].region.path != task.region.path:
            batches.append(current)
            current, cost = [], 0.0
        current.append(task)
        cost += task.cost
        if cost >= min_cost or len(current) >= max_tasks:
            batches.append(current)
            current, cost = [], 0.0
    if current:
        batches.append(current)
    return batches


def plan_tasks(model_id: str, revision: str, tensors: list[TensorInfo], config: dict) -> list[MatrixTask]:
    """Tasks for a whole model: quantized layers dequantized (FP8 with scales, GPTQ, AWQ), their
    companion tensors folded in, unsupported packed formats skipped with the reason."""
    from dataclasses import replace

    from tpa_dist.checkpoint.classify import classify
    from tpa_dist.checkpoint.quant import fp8_scale_for, packed_layers, scale_block

    by_name = {t.param_name: t for t in tensors}
    packed, skipped = packed_layers(tensors, config)
    companions = {p.qzeros.param_name for p in packed.values()} | {p.scales.param_name for p in packed.values()}
    companions |= {p.g_idx.param_name for p in packed.values() if p.g_idx is not None}
    out: list[MatrixTask] = []
    for t in tensors:
        if t.param_name in skipped:
            out += [
                replace(task, kind="skipped", note=skipped[t.param_name])
                for task in tasks_for_tensor(model_id, revision, t)
            ]
        elif t.param_name in companions:
            continue  # consumed by its packed layer
        elif t.param_name.endswith(".qweight") and t.param_name[: -len(".qweight")] in packed:
            p = packed[t.param_name[: -len(".qweight")]]
            n_in = t.shape[0] * (32 // p.bits) if p.method != "awq" else t.shape[0]
            n_out = p.scales.shape[1]
            cls = classify(t.param_name[: -len(".qweight")] + ".weight")
            (task,) = tasks_for_tensor(model_id, revision, t)
            region = Region(t.param_name, t.path, t.start, "I32", n_in, n_out, packed=p)
            out.append(
                replace(
                    task,
                    kind="matrix",
                    region=region,
                    shape=(n_out, n_in),
                    dtype=f"{p.method}-int{p.bits}",
                    layer_index=cls.layer_index,
                    block_type=cls.block_type,
                    expert_index=cls.expert_index,
                )
            )
        else:
            for task in tasks_for_tensor(model_id, revision, t):
                scale = fp8_scale_for(t, by_name) if task.kind == "matrix" else None
                if scale is not None:
                    rows, cols = (scale.shape + (1, 1))[:2] if scale.ndim < 2 else scale.shape
                    rows, cols = max(rows, 1), max(cols, 1)
                    scale_region = Region(scale.param_name, scale.path, scale.start, scale.dtype, rows, cols)
                    block = scale_block(task.region.rows, task.region.cols, (rows, cols), config)
                    task = replace(task, region=replace(task.region, scale=scale_region, scale_block=block))
                out.append(task)
    return out

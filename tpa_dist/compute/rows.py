"""Typed result rows: what a worker measures for one matrix (`MatrixRow`), and the columns the driver adds when it
stores the row (`STAMPED`). The store writes exactly these declared columns — a misspelt or missing column is an
error (a test compares them with the table), never a silent NULL."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

#: columns of matrix_analysis that the driver stamps on each row when it stores it (not measured by workers)
STAMPED = ("settings_id", "run_id", "fallback_reason")


@dataclass(kw_only=True)
class SpectralColumns:
    """The metrics of a singular-value spectrum (metrics.py, heavytail.py): the columns matrix_analysis and
    delta_analysis share, filled by name."""

    design_rank: int | None = None
    actual_rank: int | None = None
    rank_ratio: float | None = None
    energy_rank_50: int | None = None
    energy_rank_90: int | None = None
    energy_rank_95: int | None = None
    energy_rank_99: int | None = None  # (svd_90_percent_rank/ratio: matrix_analysis computes them from energy_rank_90)
    spectral_norm: float | None = None
    frobenius_norm: float | None = None
    nuclear_norm: float | None = None
    stable_rank: float | None = None
    effective_rank: float | None = None
    condition_number: float | None = None
    alpha: float | None = None
    D: float | None = None  # noqa: N815 - WeightWatcher's name
    xmin: float | None = None
    xmax: float | None = None
    num_pl_spikes: int | None = None
    lambda_max: float | None = None
    alpha_weighted: float | None = None
    log_norm: float | None = None
    log_spectral_norm: float | None = None
    log_alpha_norm: float | None = None
    entropy: float | None = None
    snr: float | None = None  # Spectrum's signal-to-noise ratio (+inf: every noise value zero)

    def update(self, values: dict[str, object] | None = None, **more: object) -> None:
        """Set measured columns by name; a name that is not a column is an error."""
        names = {f.name for f in fields(self)}
        for key, value in {**(values or {}), **more}.items():
            if key not in names:
                raise TypeError(f"{type(self).__name__} has no column {key!r}")
            setattr(self, key, value)

    def finite(self) -> None:
        """NaN and ±Inf measurements are stored as NULL (but an infinite SNR, which ranks first, as Spectrum's)."""
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value) and not (f.name == "snr" and value > 0):
                setattr(self, f.name, None)

    def __getitem__(self, key: str) -> object:  # rows read like the mappings they are stored as
        if key not in {f.name for f in fields(self)}:
            raise KeyError(key)
        return getattr(self, key)


@dataclass
class MatrixRow(SpectralColumns):
    """One row of matrix_analysis as a worker produces it. Identity and shape come from the task; the rest is
    measured (statistics for every tensor, the spectral columns for matrices)."""

    # identity, from the task
    model_id: str
    revision: str
    matrix_key: str
    param_name: str
    expert_index: int | None
    layer_index: int | None
    block_type: str
    kind: str  # matrix | vector | tensor | buffer | skipped
    shape: str  # the analyzed matrix (rows, cols), or the tensor's own shape for the statistics-only kinds
    rows: int | None
    cols: int | None
    numel: int
    dtype: str
    shard: str
    nbytes: int
    # how it was measured
    sparsity_threshold: float | None = None
    status: str = "ok"  # ok | error | skipped | oom (re-run on a CPU worker, never stored)
    error: str | None = None
    method: str | None = None
    device: str | None = None
    seconds: float | None = None
    node: str | None = None
    worker: str | None = None
    # element statistics
    mean: float | None = None
    std: float | None = None
    var: float | None = None
    min: float | None = None
    max: float | None = None
    sparsity: float | None = None
    rmt: RmtRow | None = None  # --rmt: stored in rmt_analysis (not a column of matrix_analysis)


MATRIX_COLUMNS = tuple(f.name for f in fields(MatrixRow) if f.name != "rmt")


@dataclass(kw_only=True)
class RmtRow:
    """One row of rmt_analysis: WeightWatcher's per-layer columns for one matrix (compute/rmt.py), under its names.
    Columns of a part switched off ([rmt]) stay NULL; `traps` (row, col, value) of the largest entries go to
    rmt_traps."""

    matrix_key: str
    rmt_id: str  # RmtSettings.rmt_id(): which [rmt] settings produced it
    N: int  # noqa: N815 - WeightWatcher's names: the long and short side, Q = N/M
    M: int  # noqa: N815
    Q: float  # noqa: N815
    num_evals: int
    sv_max: float | None = None
    sv_min: float | None = None
    matrix_rank: int | None = None
    rank_loss: int | None = None
    weak_rank_loss: int | None = None
    entropy: float | None = None
    # the power-law fit WeightWatcher's `fit`/`fix_fingers` options choose ([rmt] fit, fix_fingers)
    fit: str | None = None
    status: str | None = None  # success | failed
    alpha: float | None = None
    xmin: float | None = None
    xmax: float | None = None
    D: float | None = None  # noqa: N815
    sigma: float | None = None
    num_pl_spikes: int | None = None
    alpha_weighted: float | None = None
    log_alpha_norm: float | None = None
    tpl_lambda: float | None = None  # the truncated power law's cutoff, WeightWatcher's Lambda
    num_fingers: int | None = None
    raw_alpha: float | None = None
    # Marchenko–Pastur fit
    num_spikes: int | None = None
    sigma_mp: float | None = None
    mp_softrank: float | None = None
    bulk_min: float | None = None
    bulk_max: float | None = None
    W_scale: float | None = None  # noqa: N815
    # the element-wise shuffled matrix
    seed: int | None = None
    replicas: int | None = None
    max_rand_eval: float | None = None
    rand_distance: float | None = None
    ww_softrank: float | None = None
    ww_maxdist: float | None = None
    rand_num_spikes: int | None = None
    rand_sigma_mp: float | None = None
    rand_mp_softrank: float | None = None
    rand_bulk_min: float | None = None
    rand_bulk_max: float | None = None
    rand_W_scale: float | None = None  # noqa: N815
    # detX = 1 (ERG)
    detX_num: int | None = None  # noqa: N815
    detX_val: float | None = None  # noqa: N815
    detX_val_unrescaled: float | None = None  # noqa: N815
    ERG_gap: int | None = None  # noqa: N815
    # eigenvector localization, over the bulk (below xmin) and the tail
    bulk_mean_vec_entropy: float | None = None
    bulk_var_vec_entropy: float | None = None
    tail_mean_vec_entropy: float | None = None
    tail_var_vec_entropy: float | None = None
    bulk_mean_loc_ratio: float | None = None
    bulk_var_loc_ratio: float | None = None
    tail_mean_loc_ratio: float | None = None
    tail_var_loc_ratio: float | None = None
    bulk_mean_part_ratio: float | None = None
    bulk_var_part_ratio: float | None = None
    tail_mean_part_ratio: float | None = None
    tail_var_part_ratio: float | None = None
    seconds: float | None = None  # the RMT analyses' own time
    traps: list[tuple[int, int, float]] | None = None  # (row, col, value) of each trap, largest |value| first

    def update(self, values: dict[str, object]) -> None:
        """Set columns by name; a name that is not a column is an error."""
        names = {f.name for f in fields(self)}
        for key, value in values.items():
            if key not in names:
                raise TypeError(f"RmtRow has no column {key!r}")
            setattr(self, key, value)

    def finite(self) -> None:
        """NaN and ±Inf as NULL (an empty bulk's mean, a failed fit's norms)."""
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                setattr(self, f.name, None)


RMT_COLUMNS = tuple(f.name for f in fields(RmtRow) if f.name != "traps")
TRAP_CAP = 64  # correlation traps named per matrix (their count is rand_num_spikes, whatever it is)


@dataclass
class DeltaRow(SpectralColumns):
    """One row of delta_analysis: ΔW = tuned − base of one matrix (delta.py). Skipped pairs (a tensor in one model
    only, or shapes that differ) are rows too, with the reason in `error`."""

    model_id: str
    revision: str
    base_model_id: str
    base_revision: str
    matrix_key: str
    param_name: str
    expert_index: int | None
    layer_index: int | None
    block_type: str
    shape: str
    rows: int | None
    cols: int | None
    dtype: str | None
    base_dtype: str | None
    status: str = "ok"  # ok | error | skipped
    error: str | None = None
    device: str | None = None
    seconds: float | None = None
    node: str | None = None
    worker: str | None = None
    # the update relative to the base, and the subspace change
    relative_update: float | None = None  # ‖ΔW‖_F / ‖W_base‖_F
    spectral_update: float | None = None  # ‖ΔW‖₂ / ‖W_base‖₂
    base_frobenius_norm: float | None = None
    tuned_frobenius_norm: float | None = None
    subspace_side: str | None = None  # right | left: the smaller side's singular vectors
    subspace_rank: int | None = None
    principal_angles: list[float] | None = None  # radians, ascending, between the top-r subspaces
    max_principal_angle: float | None = None
    intruder_k: int | None = None
    intruder_epsilon: float | None = None
    intruders: int | None = None
    intruder_similarity: list[float] | None = None  # per top-k tuned vector: largest |cos| with a base vector


DELTA_COLUMNS = tuple(f.name for f in fields(DeltaRow))
DELTA_STAMPED = ("settings_id", "run_id")


@dataclass(frozen=True)
class ModelRecord:
    """A model's row in the `models` table: what planning found (or why it failed)."""

    model_id: str
    revision: str
    source_path: str | None = None
    architecture: str | None = None
    config: dict | None = None
    config_error: str | None = None
    num_shards: int | None = None
    num_tensors: int | None = None
    num_params: int | None = None
    status: str = "ok"
    error: str | None = None
    run_id: str | None = None

    @classmethod
    def failed(cls, spec: str, error: str, run_id: str) -> ModelRecord:
        """The row of a model that could not be planned (its revision unknown)."""
        return cls(model_id=spec, revision="unresolved", status="error", error=error, run_id=run_id)


MODEL_COLUMNS = tuple(f.name for f in fields(ModelRecord))

"""Synthetic truth for delta analysis: fine-tunes of a preset with planted changes, and a training trajectory.

* `tiny-llama-ft` — a full fine-tune of `tiny-llama`: some matrices get a planted ΔW of exact rank r with r equal
  singular values (orthonormal random factors in float64), stored as F32 so that storage rounding stays ~1e-7
  below the planted change; the others are stored unchanged (bit-identical values: ΔW = 0, rank 0).
* `tiny-llama-lora` — a LoRA-style update of the attention projections: rank-r ΔW = B·A whose singular values
  exceed the base's largest, along random directions — they become the tuned matrix's top singular vectors and
  are nearly orthogonal to every base singular vector (intruder dimensions, Shuttleworth et al. 2024).
* `tiny-llama-step1` … `tiny-llama-step4` — checkpoints of one training run: every layer matrix has a power-law
  spectrum σ_j ∝ j^(−β) over the same singular vectors, β growing with the step, so the eigenvalues' power-law
  exponent α = 1 + 1/(2β) falls monotonically (2.0, 1.77, 1.63, 1.53).

The plan of each (ranks, singular values, unchanged and intruder matrices) is in the folder's tpa_synth.json.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

MANIFEST = "tpa_synth.json"

#: name -> (base preset, kind)
DERIVED = {
    "tiny-llama-ft": ("tiny-llama", "ft"),
    "tiny-llama-lora": ("tiny-llama", "lora"),
    **{f"tiny-llama-step{i}": ("tiny-llama", f"step{i}") for i in range(1, 5)},
}

#: tiny-llama-ft: matrix -> planted rank of ΔW (the other matrices are unchanged)
FT_PLAN = {
    "model.layers.0.self_attn.q_proj.weight": 2,
    "model.layers.0.mlp.up_proj.weight": 5,
    "model.layers.1.mlp.down_proj.weight": 3,
    "model.layers.1.self_attn.k_proj.weight": 1,
}
FT_SIGMA = 0.25  # every planted singular value of ΔW
STEP_BETA = (0.35, 0.15)  # β = 0.35 + 0.15 · step: α = 1 + 1/(2β) from 2.0 at step 1 to 1.53 at step 4
LORA_RANK = 4
LORA_TARGETS = ("q_proj", "v_proj")


def _orthonormal(rng: np.random.Generator, n: int, r: int) -> np.ndarray:
    q, _ = np.linalg.qr(rng.standard_normal((n, r)))
    return q[:, :r]


def _low_rank(rng: np.random.Generator, shape: tuple[int, int], sigmas: np.ndarray) -> np.ndarray:
    u = _orthonormal(rng, shape[0], len(sigmas))
    v = _orthonormal(rng, shape[1], len(sigmas))
    return (u * sigmas) @ v.T


def _trajectory(rng: np.random.Generator, shape: tuple[int, int], step: int, scale: float) -> np.ndarray:
    """The matrix at a training step: σ_j = scale · j^(−β) with β growing by step (the same singular vectors at
    every step), so its eigenvalues λ = σ² follow a power law of exponent α = 1 + 1/(2β) that falls step by step."""
    beta = STEP_BETA[0] + STEP_BETA[1] * step
    sigmas = scale * np.arange(1, min(shape) + 1, dtype=np.float64) ** -beta
    return _low_rank(rng, shape, sigmas)


def all_presets() -> tuple[str, ...]:
    """Every synth: preset name, derived ones included."""
    from tpa_dist.sources.synth.presets import PRESETS

    return PRESETS + tuple(DERIVED)


def write_any(name: str, out_dir: str | Path, seed: int = 0) -> Path:
    """Write any synth: preset — a built-in one (synth.py) or a derived one (here)."""
    from tpa_dist.sources.synth.writer import write_synthetic

    return write_derived(name, out_dir, seed) if name in DERIVED else write_synthetic(name, out_dir, seed=seed)


def write_derived(name: str, out_dir: str | Path, seed: int = 0) -> Path:
    """Write derived preset `name` (see DERIVED) into `out_dir`; idempotent for the same seed."""
    from safetensors.numpy import load_file, save_file

    from tpa_dist.sources.synth.writer import write_synthetic

    base_name, kind = DERIVED[name]
    out = Path(out_dir)
    manifest_path = out / MANIFEST
    if manifest_path.exists():
        try:
            done = json.loads(manifest_path.read_text())
            if (done.get("preset"), done.get("seed"), done.get("complete")) == (name, seed, True):
                return out
        except ValueError:
            pass
    base = write_synthetic(base_name, out.parent / f".{out.name}-base", seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, sum(map(ord, name))])
    plan: dict[str, dict[str, object]] = {}
    for shard in sorted(base.glob("*.safetensors")):
        tensors = load_file(str(shard))
        for key, w in sorted(tensors.items()):
            if w.ndim != 2:
                continue
            change = _change(kind, key, w.shape, rng, w.astype(np.float64))
            if change is None:
                continue
            delta, entry = change
            tensors[key] = (w.astype(np.float64) + delta).astype(np.float32)
            plan[key] = entry
        save_file(tensors, str(out / shard.name), metadata={"format": "pt"})
    for extra in base.iterdir():
        if extra.suffix != ".safetensors" and extra.name != MANIFEST:
            shutil.copy(extra, out / extra.name)
    manifest = {"preset": name, "base": base_name, "seed": seed, "kind": kind, "planted_deltas": plan, "complete": True}
    manifest_path.write_text(json.dumps(manifest, indent=2))
    return out


def _change(
    kind: str, key: str, shape: tuple[int, int], rng: np.random.Generator, w: np.ndarray
) -> tuple[np.ndarray, dict[str, object]] | None:
    if kind == "ft":
        rank = FT_PLAN.get(key)
        if rank is None:
            return None
        return _low_rank(rng, shape, np.full(rank, FT_SIGMA)), {"rank": rank, "sigma": FT_SIGMA}
    if kind == "lora":
        if not any(f".{t}." in key for t in LORA_TARGETS):
            return None
        top = float(np.linalg.svd(w, compute_uv=False)[0])
        sigmas = top * np.linspace(3.0, 2.0, LORA_RANK)  # above the base's largest: the tuned top directions
        return _low_rank(rng, shape, sigmas), {"rank": LORA_RANK, "intruders_at_least": LORA_RANK}
    step = int(kind.removeprefix("step"))
    if "layers." not in key:
        return None
    same = np.random.default_rng([sum(map(ord, key))])  # the same directions at every step: only β changes
    target = _trajectory(same, shape, step, float(np.linalg.norm(w)) / np.sqrt(min(shape)))
    beta = STEP_BETA[0] + STEP_BETA[1] * step
    return target - w, {"step": step, "beta": beta, "alpha_theory": 1 + 1 / (2 * beta)}

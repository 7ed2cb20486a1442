"""PEFT LoRA adapters read as what they change: a folder with `adapter_config.json` and `adapter_model.safetensors` is
ΔW = scale · B·A for every target module, on its base model (`base_model_name_or_path`, or --base). The config and
the tensor names are untrusted input: read size-capped, checked, and anything that is not a plain LoRA — DoRA (its
magnitude vector rescales W itself), other PEFT methods — is refused by name."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path

from tpa_dist.checkpoint.catalog import ModelCatalog, TensorInfo, open_model
from tpa_dist.checkpoint.reader import Region
from tpa_dist.compute.tasks import LoraFactors
from tpa_dist.errors import ModelFolderError
from tpa_dist.files import read_bytes_limited

CONFIG = "adapter_config.json"
WEIGHTS = "adapter_model.safetensors"
_KEY = re.compile(
    r"^(?:base_model\.model\.)?(?P<module>.+?)\.lora_(?P<kind>A|B|embedding_A|embedding_B)(?:\.[^.]+)?"
    r"(?:\.weight)?$"
)


@dataclass(frozen=True)
class LoraModule:
    """One adapted module: the base weight it changes and the factors of its update."""

    module: str
    param_name: str  # the base model's weight: `module.weight`
    factors: LoraFactors


@dataclass(frozen=True)
class Adapter:
    """A PEFT LoRA folder: its config, the base it adapts (None: give --base), its modules."""

    path: Path
    catalog: ModelCatalog
    config: dict
    base: str | None
    rank: int
    modules: list[LoraModule]
    full: list[TensorInfo]  # whole weights saved beside the factors (modules_to_save): compared as usual
    name: str = ""  # the model_id it is stored as (NAME=, else the folder's name)


def is_adapter(path: Path) -> bool:
    """Whether a local folder is a PEFT adapter (its config and weights side by side)."""
    return path.is_dir() and (path / CONFIG).is_file() and (path / WEIGHTS).is_file()


def open_adapter(path: str | Path) -> Adapter:
    """Read an adapter folder; a named ModelFolderError for what is not a plain LoRA or is malformed."""
    root = Path(path).expanduser().resolve()
    where = root / CONFIG
    try:
        config = json.loads(read_bytes_limited(where, 1 << 20).decode("utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ModelFolderError(str(where), f"cannot read the adapter config: {exc}") from None
    if not isinstance(config, dict):
        raise ModelFolderError(str(where), "the adapter config is not a JSON object")
    kind = str(config.get("peft_type", "LORA")).upper()
    if kind != "LORA":
        raise ModelFolderError(str(where), f"a PEFT adapter of type {kind}: only LoRA adapters (ΔW = B·A) are analyzed")
    if config.get("use_dora"):
        raise ModelFolderError(
            str(where),
            "a DoRA adapter: its magnitude vector rescales each column of W itself, so its change is not B·A — merge "
            "it (merge_and_unload) and analyze the merged model with --base instead",
        )
    rank = config.get("r")
    alpha = config.get("lora_alpha", rank)
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1 or not isinstance(alpha, (int, float)):
        raise ModelFolderError(str(where), f"needs an integer r ≥ 1 and a numeric lora_alpha, got {rank!r}, {alpha!r}")
    _check_scale(where, "lora_alpha", alpha)
    catalog = open_model(root)
    variant = sorted(
        t.param_name for t in catalog.tensors() if ".lora_" in t.param_name and not _KEY.match(t.param_name)
    )
    if variant:
        what = (
            "a DoRA adapter (it saves a magnitude vector)"
            if "lora_magnitude_vector" in variant[0]
            else "a LoRA variant"
        )
        raise ModelFolderError(
            str(root / WEIGHTS),
            f"{what}: tensor {variant[0]!r} is not a plain LoRA factor, so its change is not B·A — merge it "
            "(merge_and_unload) and analyze the merged model with --base instead",
        )
    factors: dict[str, dict[str, TensorInfo]] = {}
    full: list[TensorInfo] = []
    for t in catalog.tensors():
        m = _KEY.match(t.param_name)
        if m is None:
            full.append(_unprefixed(t))
            continue
        factors.setdefault(m.group("module"), {})[m.group("kind")] = t
    alphas = _pattern_values(config.get("alpha_pattern"), sorted(factors), alpha, where)
    modules = []
    for module, parts in sorted(factors.items()):
        embedding = "embedding_A" in parts or "embedding_B" in parts
        a, b = (parts.get("embedding_A"), parts.get("embedding_B")) if embedding else (parts.get("A"), parts.get("B"))
        if a is None or b is None:
            raise ModelFolderError(str(root / WEIGHTS), f"module {module}: lora_A or lora_B is missing")
        if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[1]:
            raise ModelFolderError(
                str(root / WEIGHTS), f"module {module}: factor shapes {a.shape} and {b.shape} do not make B·A"
            )
        r = a.shape[0]
        scale_alpha = alphas[module]
        scale = scale_alpha / math.sqrt(r) if config.get("use_rslora") else scale_alpha / r
        # Linear: ΔW [out, in] = B·A; Conv1D (fan_in_fan_out, GPT-2) and embeddings store W as [in, out]: (B·A)ᵀ
        transposed = embedding or bool(config.get("fan_in_fan_out"))
        modules.append(
            LoraModule(module, f"{module}.weight", LoraFactors(_region(a), _region(b), float(scale), transposed))
        )
    if not modules:
        raise ModelFolderError(str(root / WEIGHTS), "holds no lora_A/lora_B factors")
    base = config.get("base_model_name_or_path")
    return Adapter(root, catalog, config, base if isinstance(base, str) and base.strip() else None, rank, modules, full)


MAX_SCALE = 1e6  # |lora_alpha| (and an alpha_pattern value) above this is no adapter's: scale·B·A would overflow
PATTERN_SECONDS = 1.0  # alpha_pattern is matched in a child process given this long (a regex can backtrack for ever)


def _check_scale(where: Path, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ModelFolderError(str(where), f"{name} must be a finite number, got {value!r}")
    if abs(value) > MAX_SCALE:
        raise ModelFolderError(str(where), f"{name} = {value!r} is not an adapter's scale (|{name}| ≤ {MAX_SCALE:g})")


def _pattern_values(patterns: object, modules: list[str], default: float, where: Path) -> dict[str, float]:
    r"""Each module's alpha: PEFT's alpha_pattern (a key is a regular expression matched as PEFT matches it,
    `re.match(rf"(.*\.)?({key})$", module)`, the first key that matches wins), else `default`. The patterns are
    untrusted: an invalid one, a value that is no finite scale, or one that does not finish within PATTERN_SECONDS
    (catastrophic backtracking) fails this adapter in one line."""
    if patterns is None or patterns == {}:
        return {m: float(default) for m in modules}
    if not isinstance(patterns, dict) or not all(isinstance(k, str) for k in patterns):
        raise ModelFolderError(str(where), "alpha_pattern must map module patterns to numbers")
    for key, value in patterns.items():
        _check_scale(where, f"alpha_pattern[{key!r}]", value)
        try:
            re.compile(rf"(.*\.)?({key})$")
        except re.error as exc:
            raise ModelFolderError(
                str(where), f"alpha_pattern key {key!r} is not a regular expression: {exc}"
            ) from None
    import multiprocessing

    context = multiprocessing.get_context("fork")
    ours, theirs = context.Pipe(duplex=False)
    child = context.Process(target=_match_patterns, args=(theirs, patterns, modules, float(default)), daemon=True)
    child.start()
    theirs.close()
    try:
        if not ours.poll(PATTERN_SECONDS):
            raise ModelFolderError(
                str(where),
                f"alpha_pattern did not match the {len(modules)} module names within {PATTERN_SECONDS:g} s "
                "(a pathological regular expression?)",
            )
        return ours.recv()
    except EOFError:
        raise ModelFolderError(str(where), "alpha_pattern could not be matched") from None
    finally:
        ours.close()
        if child.is_alive():
            child.kill()
        child.join()


def _match_patterns(conn: object, patterns: dict, modules: list[str], default: float) -> None:
    out = {}
    for module in modules:
        key = next((k for k in patterns if re.match(rf"(.*\.)?({k})$", module)), None)
        out[module] = float(patterns[key]) if key is not None else default
    conn.send(out)
    conn.close()


def _region(t: TensorInfo) -> Region:
    return Region(t.param_name, t.path, t.start, t.dtype, t.shape[0], t.shape[1])


def _unprefixed(t: TensorInfo) -> TensorInfo:
    return replace(t, param_name=t.param_name.removeprefix("base_model.model."))

"""The lazy model catalog: every tensor of a safetensors folder, from headers and index alone."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tpa_dist.checkpoint.classify import classify
from tpa_dist.checkpoint.dtypes import FLOAT_DTYPES
from tpa_dist.checkpoint.header import FileHeader, read_header
from tpa_dist.errors import HeaderError, ModelFolderError, UnsupportedFormatError
from tpa_dist.files import read_bytes_limited

INDEX_FILE = "model.safetensors.index.json"
PICKLE_PATTERNS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")
MAX_JSON_BYTES = 50_000_000


#: integer tensors of GPTQ/AWQ layers that are weights, not buffers
QUANT_PARTS = (".qweight", ".qzeros", ".g_idx")


@dataclass(frozen=True)
class TensorInfo:
    """One tensor: its location (file + byte range), storage, and classification."""

    param_name: str  # the tensor's name in the checkpoint
    shard: str  # file name relative to the model folder
    path: str  # absolute path of the shard
    dtype: str
    shape: tuple[int, ...]
    start: int
    nbytes: int
    layer_index: int | None
    block_type: str
    expert_index: int | None

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def is_parameter(self) -> bool:
        """A weight (floating point, or a quantized layer's packed integers), not a buffer such as BERT's int64
        position_ids or a causal mask: what parameter counts count."""
        return self.dtype in FLOAT_DTYPES or self.param_name.endswith(QUANT_PARTS)


@dataclass
class ModelCatalog:
    """A checkpoint folder: shard list, config.json, and tensors read lazily shard by shard."""

    root: Path
    shards: list[str]
    config: dict[str, object]
    config_error: str | None = None
    _index: dict[str, str] | None = None
    _headers: dict[str, FileHeader] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # problems worked around (a tensor stored twice)

    @property
    def architecture(self) -> str | None:
        archs = self.config.get("architectures")
        if isinstance(archs, list) and archs and isinstance(archs[0], str):
            return archs[0]
        model_type = self.config.get("model_type")
        return model_type if isinstance(model_type, str) else None

    def header(self, shard: str) -> FileHeader:
        """The validated header of one shard (read once, cached)."""
        if shard not in self._headers:
            self._headers[shard] = read_header(self.root / shard)
        return self._headers[shard]

    def iter_tensors(self) -> Iterator[TensorInfo]:
        """Every tensor, shard by shard, reading each header only when reached. A name stored in two shards is
        taken from the shard the index names (else the first shard); the stray copy is noted in `warnings`."""
        seen: dict[str, str] = {}
        for shard in self.shards:
            header = self.header(shard)
            names = {e.name for e in header.tensors}
            if self._index is not None:
                missing = sorted(n for n, s in self._index.items() if s == shard and n not in names)
                if missing:
                    raise ModelFolderError(
                        str(self.root / shard),
                        f"{len(missing)} tensor(s) listed in {INDEX_FILE} are absent from the shard, "
                        f"e.g. {missing[0]!r}",
                    )
            for entry in header.tensors:
                home = (self._index or {}).get(entry.name) or seen.get(entry.name, shard)
                if home != shard:
                    self._note(f"tensor {entry.name!r} is also stored in {shard}; the copy in {home} is used")
                    continue
                seen[entry.name] = shard
                cls = classify(entry.name)
                yield TensorInfo(
                    entry.name,
                    shard,
                    header.path,
                    entry.dtype,
                    entry.shape,
                    entry.start,
                    entry.nbytes,
                    cls.layer_index,
                    cls.block_type,
                    cls.expert_index,
                )

    def _note(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def tensors(self) -> list[TensorInfo]:
        return list(self.iter_tensors())

    def fingerprint(self) -> str:
        """A content fingerprint of the checkpoint: headers, sizes, mtimes and ctimes of every shard. The ctime is
        what the kernel sets on every write and nobody can set back (restoring an mtime with `touch -r` or utime
        sets it too): values rewritten in place under the same header, size and mtime are a new revision. Costs
        one stat per shard; a copied folder is a new revision (recomputed once)."""
        digest = hashlib.sha256()
        for shard in self.shards:
            st = (self.root / shard).stat()
            digest.update(shard.encode())
            digest.update(self.header(shard).header_bytes)
            digest.update(f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}".encode())
        return digest.hexdigest()[:16]


def _read_json(path: Path, what: str) -> object:
    """A small JSON file of the model folder: a regular file, size-capped, any content survived."""
    try:
        raw = read_bytes_limited(path, MAX_JSON_BYTES)
    except OSError as exc:
        raise ModelFolderError(str(path), f"cannot read {what}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ModelFolderError(str(path), f"{what} is {exc}") from None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelFolderError(str(path), f"{what} is not valid JSON: {str(exc)[:200]}") from None


def _safe_shard(root: Path, name: object, index_path: Path, remote: Mapping[str, FileHeader]) -> str:
    """Validate a weight_map file name: relative, inside the folder, no escaping symlink."""
    if not isinstance(name, str) or not name:
        raise ModelFolderError(str(index_path), f"weight_map entry {name!r} is not a file name")
    if os.path.isabs(name) or ".." in Path(name).parts or "\\" in name:
        raise ModelFolderError(str(index_path), f"weight_map entry {name!r} points outside the model folder")
    target = root / name
    real_target = os.path.realpath(target)
    allowed = [os.path.realpath(root)]
    if root.parent.name == "snapshots" and root.parent.parent.name.startswith("models--"):
        allowed.append(os.path.realpath(root.parent.parent / "blobs"))  # the HF cache links snapshots to blobs
    if not any(os.path.commonpath([a, real_target]) == a for a in allowed):
        raise ModelFolderError(str(index_path), f"weight_map entry {name!r} is a link leading outside the model folder")
    if name not in remote and not target.is_file():
        raise ModelFolderError(str(index_path), f"weight_map names shard {name!r}, which does not exist")
    return name


def _read_config(root: Path) -> tuple[dict[str, object], str | None]:
    path = root / "config.json"
    if not path.exists():
        return {}, "config.json missing: analysis uses tensor names alone"
    try:
        config = _read_json(path, "config.json")
    except ModelFolderError as exc:
        return {}, str(exc)
    if not isinstance(config, dict):
        return {}, f"{path}: config.json is not a JSON object"
    return config, None


def open_model(path: str | os.PathLike[str], remote: Mapping[str, FileHeader] | None = None) -> ModelCatalog:
    """Open a local checkpoint folder (single file or sharded); raise a named error if it is not one.

    `remote` holds the headers of shards still being downloaded (read by HTTP Range): they count as present."""
    remote = remote or {}
    root = Path(path).expanduser().resolve()
    if root.is_file() and root.suffix == ".safetensors":
        config, config_error = _read_config(root.parent)
        return ModelCatalog(root.parent, [root.name], config, config_error)
    if not root.is_dir():
        raise ModelFolderError(str(root), "not a folder or .safetensors file")
    config, config_error = _read_config(root)
    index_path = root / INDEX_FILE
    if index_path.exists():
        index = _read_json(index_path, INDEX_FILE)
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise ModelFolderError(str(index_path), "has no weight_map object")
        named = {v if isinstance(v, str) else repr(v): v for v in weight_map.values()}  # each file checked once
        shards = sorted({_safe_shard(root, v, index_path, remote) for v in named.values()})
        clean = {str(k): str(v) for k, v in weight_map.items()}
        return ModelCatalog(root, shards, config, config_error, clean, dict(remote))
    shards = sorted({p.name for p in root.glob("*.safetensors") if p.is_file()} | set(remote))
    if shards:
        return ModelCatalog(root, shards, config, config_error, None, dict(remote))
    pickles = sorted(p.name for pattern in PICKLE_PATTERNS for p in root.glob(pattern))
    if pickles:
        raise UnsupportedFormatError(
            str(root),
            f"only pickle checkpoints found ({', '.join(pickles[:3])}); tpa-dist never unpickles untrusted "
            "files. Convert to safetensors first (e.g. the `convert` Space of huggingface/safetensors, or "
            "`safetensors.torch.save_file(torch.load(f, weights_only=True), 'model.safetensors')` in a "
            "sandbox you trust)",
        )
    raise ModelFolderError(str(root), "no *.safetensors files and no model.safetensors.index.json")


def find_embeddings(catalog: ModelCatalog) -> list[TensorInfo]:
    """The token-embedding matrix, plus the output head when it is a separate (untied) matrix.

    Position and token-type embeddings are never chosen (BERT's position table is not the vocabulary).
    """
    tensors = [t for t in catalog.tensors() if t.ndim == 2 and t.shape[0] > 0 and t.shape[1] > 0]
    vocab = catalog.config.get("vocab_size")
    tokens = [t for t in tensors if t.block_type == "embedding"]
    if isinstance(vocab, int) and vocab > 0:
        tokens.sort(key=lambda t: (t.shape[0] != vocab, -t.shape[0]))
    else:
        tokens.sort(key=lambda t: -t.shape[0])
    out = tokens[:1]
    heads = [t for t in tensors if t.block_type == "output" and (not out or t.shape == out[0].shape)]
    if heads and catalog.config.get("tie_word_embeddings") is not True:
        out.append(heads[0])
    return out


__all__ = ["HeaderError", "ModelCatalog", "TensorInfo", "find_embeddings", "open_model"]

"""`tpa-dist inspect`: every tensor of a checkpoint and parameter counts by block type, from headers alone."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from tpa_dist.checkpoint.catalog import ModelCatalog, TensorInfo, open_model
from tpa_dist.sources.resolve import resolve
from tpa_dist.text import printable


@dataclass
class Inventory:
    catalog: ModelCatalog
    tensors: list[TensorInfo]

    def params_by_block(self) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for t in self.tensors:
            if t.is_parameter:
                counts[t.block_type] += t.numel
        return dict(counts.most_common())


def inventory(spec: str) -> Inventory:
    """Open a model spec (folder, synth:PRESET, Hub id) and list its tensors without reading data."""
    catalog = open_model(resolve(spec).path)
    return Inventory(catalog, catalog.tensors())


def format_inventory(inv: Inventory) -> str:
    lines = [f"{'name':<60} {'shard':<34} {'dtype':<7} {'shape':<22} {'layer':>5} block"]
    for t in inv.tensors:
        layer = "" if t.layer_index is None else str(t.layer_index)
        shape = "x".join(map(str, t.shape)) or "scalar"
        name, shard = printable(t.param_name), printable(t.shard)  # a name cannot forge lines or retitle the terminal
        lines.append(f"{name:<60} {shard:<34} {t.dtype:<7} {shape:<22} {layer:>5} {t.block_type}")
    total = sum(t.numel for t in inv.tensors if t.is_parameter)
    buffers = [t for t in inv.tensors if not t.is_parameter]
    lines.append("")
    lines.append(
        f"{len(inv.tensors)} tensors in {len(inv.catalog.shards)} shard(s), {total:,} parameters"
        + (
            f" (and {len(buffers)} integer/boolean buffer(s), {sum(t.numel for t in buffers):,} elements)"
            if buffers
            else ""
        )
        + (f", architecture {inv.catalog.architecture}" if inv.catalog.architecture else "")
    )
    for block, n in inv.params_by_block().items():
        lines.append(f"  {block:<22} {n:>16,}  {100 * n / max(total, 1):5.1f}%")
    return "\n".join(lines)

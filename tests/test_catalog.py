"""Catalog: single-file and sharded folders from headers alone; untrusted index entries; classification."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
from safetensors import safe_open

from tpa_dist.checkpoint.catalog import open_model
from tpa_dist.checkpoint.classify import classify
from tpa_dist.errors import ModelFolderError, UnsupportedFormatError
from tpa_dist.sources.inventory import format_inventory, inventory
from tpa_dist.sources.synth.writer import write_synthetic

from .conftest import write_safetensors


def test_catalog_matches_safetensors_library(synth_models):
    for path in synth_models.values():
        cat = open_model(path)
        ours = {t.param_name: (t.dtype, t.shape, t.shard) for t in cat.tensors()}
        ref = {}
        for shard in cat.shards:
            with safe_open(str(path / shard), framework="pt") as fh:
                for name in fh.keys():
                    sl = fh.get_slice(name)
                    ref[name] = (sl.get_dtype(), tuple(sl.get_shape()), shard)
        assert ours == ref


def test_sharded_index_and_config(synth_models):
    cat = open_model(synth_models["tiny-mixtral"])
    assert len(cat.shards) == 3
    assert cat.architecture == "MixtralForCausalLM"
    index = json.loads((synth_models["tiny-mixtral"] / "model.safetensors.index.json").read_text())
    assert {t.param_name for t in cat.tensors()} == set(index["weight_map"])


def test_layer_zero_and_block_types(synth_models):
    tensors = open_model(synth_models["tiny-llama"]).tensors()
    layer0 = {t.block_type for t in tensors if t.layer_index == 0}
    assert {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "norm"} == layer0
    by_name = {t.param_name: t for t in tensors}
    assert by_name["model.embed_tokens.weight"].block_type == "embedding"
    assert by_name["lm_head.weight"].block_type == "output"
    assert by_name["model.embed_tokens.weight"].layer_index is None


@pytest.mark.parametrize(
    "name, layer, block, expert",
    [
        ("model.layers.0.self_attn.q_proj.weight", 0, "q_proj", None),
        ("model.layers.12.mlp.down_proj.weight", 12, "down_proj", None),
        ("model.layers.3.block_sparse_moe.experts.7.w1.weight", 3, "moe", 7),
        ("model.layers.3.block_sparse_moe.gate.weight", 3, "router", None),
        ("model.layers.2.mlp.gate.weight", 2, "router", None),
        ("model.layers.1.mlp.experts.gate_up_proj", 1, "moe", None),
        ("h.0.attn.c_attn.weight", 0, "qkv_proj", None),
        ("h.0.attn.c_proj.weight", 0, "o_proj", None),
        ("h.0.mlp.c_fc.weight", 0, "up_proj", None),
        ("h.0.mlp.c_proj.weight", 0, "down_proj", None),
        ("h.0.attn.c_attn.bias", 0, "bias", None),
        ("wte.weight", None, "embedding", None),
        ("wpe.weight", None, "position_embedding", None),
        ("bert.encoder.layer.0.attention.self.query.weight", 0, "q_proj", None),
        ("bert.encoder.layer.0.attention.self.key.weight", 0, "k_proj", None),
        ("bert.encoder.layer.0.attention.self.value.weight", 0, "v_proj", None),
        ("bert.encoder.layer.0.attention.output.dense.weight", 0, "o_proj", None),
        ("bert.encoder.layer.0.intermediate.dense.weight", 0, "up_proj", None),
        ("bert.encoder.layer.0.output.dense.weight", 0, "down_proj", None),
        ("bert.encoder.layer.0.output.LayerNorm.weight", 0, "norm", None),
        ("bert.embeddings.word_embeddings.weight", None, "embedding", None),
        ("bert.embeddings.position_embeddings.weight", None, "position_embedding", None),
        ("model.layers.5.self_attn.qkv_proj.weight", 5, "qkv_proj", None),
        ("model.layers.5.mlp.gate_up_proj.weight", 5, "gate_up_proj", None),
        ("lm_head.weight", None, "output", None),
        ("output.weight", None, "output", None),
        ("model.norm.weight", None, "norm", None),
        ("totally.unknown.thing", None, "other", None),
    ],
)
def test_classification(name, layer, block, expert):
    c = classify(name)
    assert (c.layer_index, c.block_type, c.expert_index) == (layer, block, expert)


def _two_shard_folder(tmp_path):
    a = np.ones((2, 2), np.float32)
    write_safetensors(tmp_path / "s1.safetensors", {"x": ("F32", a, (2, 2))})
    write_safetensors(tmp_path / "s2.safetensors", {"y": ("F32", a, (2, 2))})
    return tmp_path


@pytest.mark.parametrize(
    "entry, message",
    [
        ("missing.safetensors", "does not exist"),
        ("../outside.safetensors", "outside the model folder"),
        ("/etc/passwd", "outside the model folder"),
    ],
)
def test_untrusted_index_entries(tmp_path, entry, message):
    folder = _two_shard_folder(tmp_path)
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"x": "s1.safetensors", "y": entry}})
    )
    with pytest.raises(ModelFolderError, match=message):
        open_model(folder)


def test_symlink_escaping_folder(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    write_safetensors(outside / "evil.safetensors", {"y": ("F32", np.ones(2, np.float32), (2,))})
    folder = tmp_path / "model"
    folder.mkdir()
    os.symlink(outside / "evil.safetensors", folder / "s2.safetensors")
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"y": "s2.safetensors"}}))
    with pytest.raises(ModelFolderError, match="link leading outside"):
        open_model(folder)


def test_index_lists_tensor_absent_from_shard(tmp_path):
    folder = _two_shard_folder(tmp_path)
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"x": "s1.safetensors", "y": "s2.safetensors", "ghost": "s1.safetensors"}})
    )
    with pytest.raises(ModelFolderError, match="'ghost'"):
        open_model(folder).tensors()


def test_pickle_only_checkpoint_refused(tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(UnsupportedFormatError, match="never unpickles"):
        open_model(tmp_path)


@pytest.mark.parametrize(
    "content, message", [(None, "missing"), ("{not json", "not valid JSON"), ("[1]", "not a JSON object")]
)
def test_config_missing_or_malformed_still_catalogs(tmp_path, content, message):
    write_safetensors(tmp_path / "model.safetensors", {"a.weight": ("F32", np.ones((2, 2), np.float32), (2, 2))})
    if content is not None:
        (tmp_path / "config.json").write_text(content)
    cat = open_model(tmp_path)
    assert message in cat.config_error
    assert [t.param_name for t in cat.tensors()] == ["a.weight"]


def test_inspect_qwen3_4b_sized_checkpoint_is_fast(tmp_path):
    folder = write_synthetic("qwen3-4b", tmp_path / "q4", values=False)  # real headers, sparse data
    t0 = time.perf_counter()
    inv = inventory(str(folder))
    text = format_inventory(inv)
    elapsed = time.perf_counter() - t0
    assert len(inv.tensors) == 398 and len(inv.catalog.shards) == 3
    assert sum(t.numel for t in inv.tensors) == 4_022_468_096
    assert inv.params_by_block()["embedding"] == 151936 * 2560
    assert "model.layers.0.self_attn.q_proj.weight" in text
    assert elapsed < 1.0, f"inspect took {elapsed:.2f}s"

"""Synthetic checkpoint presets: the exact tensor names, shapes, dtypes and sharding of real families."""

from __future__ import annotations

from dataclasses import dataclass, field

from tpa_dist.errors import UnknownPresetError, unknown_preset_message


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str
    kind: str = "trained"  # trained | planted | zero | norm | bias | mask
    rank: int | None = None  # planted rank (per expert slice for 3-D tensors)


@dataclass
class Preset:
    name: str
    config: dict[str, object]
    tensors: list[TensorSpec]
    shards: int = 1
    tokenizer: str = "bytelevel"  # bytelevel | sentencepiece | wordpiece
    vocab_size: int = 0
    planted: dict[str, int] = field(default_factory=dict)


def _decoder_only(
    name: str,
    *,
    arch: str,
    model_type: str,
    hidden: int,
    inter: int,
    layers: int,
    heads: int,
    kv_heads: int,
    vocab: int,
    dtype: str,
    tied: bool,
    head_dim: int | None = None,
    qk_norm: bool = False,
    experts: int = 0,
    fused_experts: bool = False,
    shards: int = 1,
    tokenizer: str = "bytelevel",
    planted: dict[str, int] | None = None,
    zero: tuple[str, ...] = (),
    extra_config: dict | None = None,
) -> Preset:
    """Llama / Qwen2 / Qwen3 / Mistral / Mixtral layout (HF transformers names)."""
    hd = head_dim or hidden // heads
    planted = planted or {}
    specs: list[TensorSpec] = [TensorSpec("model.embed_tokens.weight", (vocab, hidden), dtype)]
    for i in range(layers):
        p = f"model.layers.{i}."
        attn = [
            ("q_proj", (heads * hd, hidden)),
            ("k_proj", (kv_heads * hd, hidden)),
            ("v_proj", (kv_heads * hd, hidden)),
            ("o_proj", (hidden, heads * hd)),
        ]
        for proj, shape in attn:
            specs.append(TensorSpec(f"{p}self_attn.{proj}.weight", shape, dtype))
        if qk_norm:
            specs.append(TensorSpec(f"{p}self_attn.q_norm.weight", (hd,), dtype, "norm"))
            specs.append(TensorSpec(f"{p}self_attn.k_norm.weight", (hd,), dtype, "norm"))
        if experts and fused_experts:
            specs.append(TensorSpec(f"{p}mlp.router.weight", (experts, hidden), dtype))
            specs.append(TensorSpec(f"{p}mlp.experts.gate_up_proj", (experts, 2 * inter, hidden), dtype))
            specs.append(TensorSpec(f"{p}mlp.experts.down_proj", (experts, hidden, inter), dtype))
        elif experts:
            specs.append(TensorSpec(f"{p}block_sparse_moe.gate.weight", (experts, hidden), dtype))
            for e in range(experts):
                q = f"{p}block_sparse_moe.experts.{e}."
                specs.append(TensorSpec(f"{q}w1.weight", (inter, hidden), dtype))
                specs.append(TensorSpec(f"{q}w2.weight", (hidden, inter), dtype))
                specs.append(TensorSpec(f"{q}w3.weight", (inter, hidden), dtype))
        else:
            for proj, shape in [
                ("gate_proj", (inter, hidden)),
                ("up_proj", (inter, hidden)),
                ("down_proj", (hidden, inter)),
            ]:
                specs.append(TensorSpec(f"{p}mlp.{proj}.weight", shape, dtype))
        specs.append(TensorSpec(f"{p}input_layernorm.weight", (hidden,), dtype, "norm"))
        specs.append(TensorSpec(f"{p}post_attention_layernorm.weight", (hidden,), dtype, "norm"))
    specs.append(TensorSpec("model.norm.weight", (hidden,), dtype, "norm"))
    if not tied:
        specs.append(TensorSpec("lm_head.weight", (vocab, hidden), dtype))
    specs = [_mark(s, planted, zero) for s in specs]
    config: dict[str, object] = {
        "architectures": [arch],
        "model_type": model_type,
        "hidden_size": hidden,
        "intermediate_size": inter,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": hd,
        "vocab_size": vocab,
        "hidden_act": "silu",
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": tied,
        "torch_dtype": {"BF16": "bfloat16", "F16": "float16", "F32": "float32"}[dtype],
        "bos_token_id": 1,
        "eos_token_id": 2,
        "rope_theta": 10000.0,
    }
    if experts:
        config.update(num_local_experts=experts, num_experts_per_tok=2)
    config.update(extra_config or {})
    return Preset(name, config, specs, shards, tokenizer, vocab, dict(planted))


def _mark(spec: TensorSpec, planted: dict[str, int], zero: tuple[str, ...]) -> TensorSpec:
    if spec.name in planted:
        return TensorSpec(spec.name, spec.shape, spec.dtype, "planted", planted[spec.name])
    if spec.name in zero:
        return TensorSpec(spec.name, spec.shape, spec.dtype, "zero", 0)
    return spec


def _gpt2(name: str, *, hidden: int, layers: int, vocab: int, ctx: int, planted: dict[str, int]) -> Preset:
    """GPT-2: Conv1D weights stored (in, out), fused c_attn, causal-mask buffers, float32."""
    specs = [TensorSpec("wte.weight", (vocab, hidden), "F32"), TensorSpec("wpe.weight", (ctx, hidden), "F32")]
    for i in range(layers):
        p = f"h.{i}."
        specs += [
            TensorSpec(f"{p}ln_1.weight", (hidden,), "F32", "norm"),
            TensorSpec(f"{p}ln_1.bias", (hidden,), "F32", "bias"),
            TensorSpec(f"{p}attn.bias", (1, 1, ctx, ctx), "F32", "mask"),
            TensorSpec(f"{p}attn.c_attn.weight", (hidden, 3 * hidden), "F32"),
            TensorSpec(f"{p}attn.c_attn.bias", (3 * hidden,), "F32", "bias"),
            TensorSpec(f"{p}attn.c_proj.weight", (hidden, hidden), "F32"),
            TensorSpec(f"{p}attn.c_proj.bias", (hidden,), "F32", "bias"),
            TensorSpec(f"{p}ln_2.weight", (hidden,), "F32", "norm"),
            TensorSpec(f"{p}ln_2.bias", (hidden,), "F32", "bias"),
            TensorSpec(f"{p}mlp.c_fc.weight", (hidden, 4 * hidden), "F32"),
            TensorSpec(f"{p}mlp.c_fc.bias", (4 * hidden,), "F32", "bias"),
            TensorSpec(f"{p}mlp.c_proj.weight", (4 * hidden, hidden), "F32"),
            TensorSpec(f"{p}mlp.c_proj.bias", (hidden,), "F32", "bias"),
        ]
    specs += [TensorSpec("ln_f.weight", (hidden,), "F32", "norm"), TensorSpec("ln_f.bias", (hidden,), "F32", "bias")]
    config = {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "n_embd": hidden,
        "n_layer": layers,
        "n_head": 4,
        "n_positions": ctx,
        "n_ctx": ctx,
        "vocab_size": vocab,
        "activation_function": "gelu_new",
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
    }
    return Preset(name, config, [_mark(s, planted, ()) for s in specs], 1, "bytelevel", vocab, dict(planted))


def _bert(name: str, *, hidden: int, layers: int, vocab: int, ctx: int, planted: dict[str, int]) -> Preset:
    """BERT (BertForPreTraining names), float32, WordPiece vocabulary."""
    specs = [
        TensorSpec("bert.embeddings.word_embeddings.weight", (vocab, hidden), "F32"),
        TensorSpec("bert.embeddings.position_embeddings.weight", (ctx, hidden), "F32"),
        TensorSpec("bert.embeddings.token_type_embeddings.weight", (2, hidden), "F32"),
        TensorSpec("bert.embeddings.LayerNorm.weight", (hidden,), "F32", "norm"),
        TensorSpec("bert.embeddings.LayerNorm.bias", (hidden,), "F32", "bias"),
    ]
    inter = 4 * hidden
    for i in range(layers):
        p = f"bert.encoder.layer.{i}."
        for mod, shape in [
            ("attention.self.query", (hidden, hidden)),
            ("attention.self.key", (hidden, hidden)),
            ("attention.self.value", (hidden, hidden)),
            ("attention.output.dense", (hidden, hidden)),
            ("intermediate.dense", (inter, hidden)),
            ("output.dense", (hidden, inter)),
        ]:
            specs.append(TensorSpec(f"{p}{mod}.weight", shape, "F32"))
            specs.append(TensorSpec(f"{p}{mod}.bias", (shape[0],), "F32", "bias"))
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            specs.append(TensorSpec(f"{p}{ln}.weight", (hidden,), "F32", "norm"))
            specs.append(TensorSpec(f"{p}{ln}.bias", (hidden,), "F32", "bias"))
    specs += [
        TensorSpec("bert.pooler.dense.weight", (hidden, hidden), "F32"),
        TensorSpec("bert.pooler.dense.bias", (hidden,), "F32", "bias"),
        TensorSpec("cls.predictions.bias", (vocab,), "F32", "bias"),
        TensorSpec("cls.predictions.transform.dense.weight", (hidden, hidden), "F32"),
        TensorSpec("cls.predictions.transform.dense.bias", (hidden,), "F32", "bias"),
        TensorSpec("cls.predictions.transform.LayerNorm.weight", (hidden,), "F32", "norm"),
        TensorSpec("cls.predictions.transform.LayerNorm.bias", (hidden,), "F32", "bias"),
        TensorSpec("cls.seq_relationship.weight", (2, hidden), "F32"),
        TensorSpec("cls.seq_relationship.bias", (2,), "F32", "bias"),
    ]
    config = {
        "architectures": ["BertForPreTraining"],
        "model_type": "bert",
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
        "intermediate_size": inter,
        "max_position_embeddings": ctx,
        "type_vocab_size": 2,
        "vocab_size": vocab,
        "torch_dtype": "float32",
    }
    return Preset(name, config, [_mark(s, planted, ()) for s in specs], 1, "wordpiece", vocab, dict(planted))


def preset(name: str) -> Preset:
    """Build the named preset; an unknown name raises UnknownPresetError listing the known ones."""
    builders = {
        "tiny-llama": lambda: _decoder_only(
            "tiny-llama",
            arch="LlamaForCausalLM",
            model_type="llama",
            hidden=64,
            inter=172,
            layers=2,
            heads=4,
            kv_heads=2,
            vocab=384,
            dtype="F16",
            tied=False,
            shards=2,
            tokenizer="sentencepiece",
            planted={"model.layers.0.self_attn.k_proj.weight": 4, "model.layers.1.self_attn.o_proj.weight": 9},
        ),
        "tiny-qwen3": lambda: _decoder_only(
            "tiny-qwen3",
            arch="Qwen3ForCausalLM",
            model_type="qwen3",
            hidden=64,
            inter=192,
            layers=2,
            heads=4,
            kv_heads=2,
            head_dim=32,
            vocab=512,
            dtype="BF16",
            tied=True,
            qk_norm=True,
            planted={"model.layers.1.mlp.down_proj.weight": 7},
            zero=("model.layers.1.self_attn.v_proj.weight",),
        ),
        "tiny-mixtral": lambda: _decoder_only(
            "tiny-mixtral",
            arch="MixtralForCausalLM",
            model_type="mixtral",
            hidden=64,
            inter=96,
            layers=2,
            heads=4,
            kv_heads=2,
            vocab=384,
            dtype="BF16",
            tied=False,
            experts=4,
            shards=3,
            tokenizer="sentencepiece",
            planted={"model.layers.0.block_sparse_moe.experts.1.w2.weight": 3},
        ),
        "tiny-moe-fused": lambda: _decoder_only(
            "tiny-moe-fused",
            arch="GptOssForCausalLM",
            model_type="gpt_oss",
            hidden=64,
            inter=48,
            layers=2,
            heads=4,
            kv_heads=2,
            vocab=384,
            dtype="BF16",
            tied=False,
            experts=4,
            fused_experts=True,
            planted={"model.layers.1.mlp.experts.down_proj": 5},
        ),
        "tiny-gpt2": lambda: _gpt2(
            "tiny-gpt2", hidden=64, layers=2, vocab=320, ctx=32, planted={"h.1.mlp.c_fc.weight": 5}
        ),
        "tiny-bert": lambda: _bert(
            "tiny-bert",
            hidden=64,
            layers=2,
            vocab=400,
            ctx=64,
            planted={"bert.encoder.layer.0.intermediate.dense.weight": 6},
        ),
        "bert-base": lambda: _bert("bert-base", hidden=768, layers=12, vocab=30522, ctx=512, planted={}),
        "qwen3-0.6b": lambda: _decoder_only(
            "qwen3-0.6b",
            arch="Qwen3ForCausalLM",
            model_type="qwen3",
            hidden=1024,
            inter=3072,
            layers=28,
            heads=16,
            kv_heads=8,
            head_dim=128,
            vocab=151936,
            dtype="BF16",
            tied=True,
            qk_norm=True,
            planted={"model.layers.0.self_attn.k_proj.weight": 64},
        ),
        "qwen3-4b": lambda: _decoder_only(
            "qwen3-4b",
            arch="Qwen3ForCausalLM",
            model_type="qwen3",
            hidden=2560,
            inter=9728,
            layers=36,
            heads=32,
            kv_heads=8,
            head_dim=128,
            vocab=151936,
            dtype="BF16",
            tied=True,
            qk_norm=True,
            shards=3,
            planted={"model.layers.0.self_attn.k_proj.weight": 64},
        ),
        "llama-2-7b": lambda: _decoder_only(
            "llama-2-7b",
            arch="LlamaForCausalLM",
            model_type="llama",
            hidden=4096,
            inter=11008,
            layers=32,
            heads=32,
            kv_heads=32,
            vocab=32000,
            dtype="F16",
            tied=False,
            shards=2,
            tokenizer="sentencepiece",
            planted={"model.layers.0.self_attn.k_proj.weight": 64},
        ),
    }
    if name not in builders:
        raise UnknownPresetError(unknown_preset_message(name, PRESETS))
    return builders[name]()


PRESETS = (
    "tiny-llama",
    "tiny-qwen3",
    "tiny-mixtral",
    "tiny-moe-fused",
    "tiny-gpt2",
    "tiny-bert",
    "bert-base",
    "qwen3-0.6b",
    "qwen3-4b",
    "llama-2-7b",
)

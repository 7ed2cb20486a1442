"""Name-based classification of tensors: layer index, block type, expert index.

Block types are canonical across families so that models can be compared side by side:
GPT-2's fused ``c_attn`` and Phi-3's ``qkv_proj`` are ``qkv_proj``; GPT-2 ``attn.c_proj`` and BERT
``attention.output.dense`` are ``o_proj``; GPT-2 ``mlp.c_fc`` and BERT ``intermediate.dense`` are
``up_proj``; GPT-2 ``mlp.c_proj`` and BERT ``output.dense`` are ``down_proj``. Unknown names are
``other``, never an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LAYER = re.compile(r"(?:^|\.)(?:layers|layer|h|blocks|block)\.(\d+)(?:\.|$)")
_EXPERT = re.compile(r"(?:^|\.)experts\.(\d+)(?:\.|$)")

# (pattern on the name, block type); first match wins.
_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(norm|(^|\.)ln_\w*|layernorm)(\.|$)", re.I), "norm"),
    (re.compile(r"(^|\.)attn\.(masked_)?bias$"), "other"),  # GPT-2's causal-mask buffers
    (re.compile(r"\.bias$"), "bias"),
    (re.compile(r"(^|\.)experts(\.|$)"), "moe"),
    (re.compile(r"(block_sparse_moe\.gate|mlp\.gate|mlp\.router|shared_expert_gate|\.router)\.weight$"), "router"),
    (re.compile(r"(^|\.)(qkv_proj|query_key_value|attn\.c_attn|Wqkv)\.weight$"), "qkv_proj"),
    (re.compile(r"(^|\.)(gate_up_proj)\.weight$"), "gate_up_proj"),
    (re.compile(r"(^|\.)(q_proj|attention\.self\.query|wq)\.weight$"), "q_proj"),
    (re.compile(r"(^|\.)(k_proj|attention\.self\.key|wk)\.weight$"), "k_proj"),
    (re.compile(r"(^|\.)(v_proj|attention\.self\.value|wv)\.weight$"), "v_proj"),
    (re.compile(r"(^|\.)(o_proj|attn\.c_proj|attention\.output\.dense|wo)\.weight$"), "o_proj"),
    (re.compile(r"(^|\.)(gate_proj|w1)\.weight$"), "gate_proj"),
    (re.compile(r"(^|\.)(up_proj|mlp\.c_fc|intermediate\.dense|w3|fc1)\.weight$"), "up_proj"),
    (re.compile(r"(^|\.)(down_proj|mlp\.c_proj|output\.dense|w2|fc2)\.weight$"), "down_proj"),
    (re.compile(r"(position_embeddings|(^|\.)wpe)\.weight$"), "position_embedding"),
    (re.compile(r"token_type_embeddings\.weight$"), "token_type_embedding"),
    (
        re.compile(r"(embed_tokens|word_embeddings|tok_embeddings|(^|\.)wte|embed_in|(^|\.)embeddings?)\.weight$"),
        "embedding",
    ),
    (re.compile(r"^(lm_head|output|embed_out|cls\.predictions\.decoder)\.weight$"), "output"),
    (re.compile(r"(^|\.)lm_head\.weight$"), "output"),
]

#: The canonical order of block types inside a layer, for tables and plots.
BLOCK_ORDER = (
    "embedding",
    "position_embedding",
    "token_type_embedding",
    "q_proj",
    "k_proj",
    "v_proj",
    "qkv_proj",
    "o_proj",
    "router",
    "gate_proj",
    "up_proj",
    "gate_up_proj",
    "down_proj",
    "moe",
    "output",
    "norm",
    "bias",
    "other",
)

#: Block types whose 2-D tensors are embeddings (rows are tokens or positions).
EMBEDDING_TYPES = frozenset({"embedding", "position_embedding", "token_type_embedding"})


@dataclass(frozen=True)
class Classification:
    layer_index: int | None
    block_type: str
    expert_index: int | None


def layer_index(name: str) -> int | None:
    """The integer layer index in a parameter name (layer 0 included), or None for non-layer tensors."""
    match = _LAYER.search(name)
    return int(match.group(1)) if match else None


def classify(name: str) -> Classification:
    """Classify a parameter name; never raises."""
    expert = _EXPERT.search(name)
    block = "other"
    for pattern, kind in _RULES:
        if pattern.search(name):
            block = kind
            break
    return Classification(layer_index(name), block, int(expert.group(1)) if expert else None)

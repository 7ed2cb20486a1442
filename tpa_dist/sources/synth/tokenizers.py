"""Synthetic tokenizer files in the Hugging Face formats (byte-level BPE, SentencePiece BPE, WordPiece) for the
synth: presets. Reading real ones is vocab.py."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

from tpa_dist.checkpoint.vocab import bytes_to_unicode, load_vocab  # noqa: F401 - load_vocab re-exported (the reading side)

_ONSETS = [
    "",
    "b",
    "c",
    "d",
    "f",
    "g",
    "h",
    "j",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "t",
    "v",
    "w",
    "st",
    "th",
    "ch",
    "sh",
    "pr",
    "tr",
    "gr",
    "br",
    "cl",
    "pl",
]
_VOWELS = ["a", "e", "i", "o", "u", "ea", "io", "ou", "y"]
_CODAS = ["", "n", "r", "s", "t", "l", "m", "d", "ng", "ck", "st", "nt"]


def _words() -> Iterator[str]:
    for n in itertools.count(1):
        for parts in itertools.product(itertools.product(_ONSETS, _VOWELS, _CODAS), repeat=n):
            yield "".join("".join(p) for p in parts)


def _unique(prefixes: list[str], count: int, taken: set[str]) -> list[str]:
    out: list[str] = []
    for word in _words():
        for pre in prefixes:
            tok = pre + word
            if tok not in taken:
                taken.add(tok)
                out.append(tok)
                if len(out) == count:
                    return out
    return out


def _vocab(kind: str, size: int) -> tuple[list[str], list[str]]:
    """(regular tokens in id order, special tokens appended after them)."""
    if kind == "wordpiece":
        specials = (
            ["[PAD]"] + [f"[unused{i}]" for i in range(min(99, size // 8))] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        )
        base = specials + [chr(c) for c in range(ord("a"), ord("z") + 1)] + list(".,!?'-")
        rest = _unique(["", "##"], size - len(base), set(base))
        return base + rest, []
    if kind == "sentencepiece":
        base = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
        rest = _unique(["▁", ""], size - len(base), set(base))
        return base + rest, []
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    base = list(bytes_to_unicode().values())
    n_regular = max(len(base), size - len(specials) - max(0, size // 600))  # real vocabularies pad the embedding
    rest = _unique(["Ġ", ""], n_regular - len(base), set(base))
    return base + rest, specials


def write_tokenizer(folder: Path, kind: str, size: int) -> None:
    """Write tokenizer.json (and vocab.txt for WordPiece) describing `size` embedding rows."""
    regular, specials = _vocab(kind, size)
    vocab = {tok: i for i, tok in enumerate(regular)}
    added = [
        {
            "id": len(regular) + i,
            "content": tok,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for i, tok in enumerate(specials)
    ]
    if kind == "wordpiece":
        model = {
            "type": "WordPiece",
            "unk_token": "[UNK]",
            "continuing_subword_prefix": "##",
            "max_input_chars_per_word": 100,
            "vocab": vocab,
        }
        decoder = {"type": "WordPiece", "prefix": "##", "cleanup": True}
        pre = {"type": "BertPreTokenizer"}
        (folder / "vocab.txt").write_text("\n".join(regular) + "\n", encoding="utf-8")
    elif kind == "sentencepiece":
        model = {
            "type": "BPE",
            "dropout": None,
            "unk_token": "<unk>",
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": True,
            "byte_fallback": True,
            "vocab": vocab,
            "merges": [],
        }
        decoder = {
            "type": "Sequence",
            "decoders": [
                {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
                {"type": "ByteFallback"},
                {"type": "Fuse"},
                {"type": "Strip", "content": " ", "start": 1, "stop": 0},
            ],
        }
        pre = None
    else:
        model = {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": "",
            "end_of_word_suffix": "",
            "fuse_unk": False,
            "byte_fallback": False,
            "vocab": vocab,
            "merges": [],
        }
        decoder = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
        pre = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    doc = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": pre,
        "post_processor": None,
        "decoder": decoder,
        "model": model,
    }
    (folder / "tokenizer.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    cls = {"wordpiece": "BertTokenizerFast", "sentencepiece": "LlamaTokenizerFast"}.get(kind, "Qwen2TokenizerFast")
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": cls}))

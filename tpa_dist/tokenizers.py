"""Tokenizer files in the Hugging Face formats: writing synthetic ones (byte-level BPE, SentencePiece BPE,
WordPiece) and decoding token ids of real ones to readable strings (no tokenizer code is executed)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

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


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table (space becomes 'Ġ')."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


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


MAX_TOKENIZER_BYTES = 200_000_000


def _byte_level_text(token: str, table: dict[str, int]) -> str:
    data = bytes(table[c] for c in token if c in table) if all(c in table for c in token) else token.encode()
    return data.decode("utf-8", errors="replace")


def _sentencepiece_text(token: str) -> str:
    if len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
        try:
            return bytes([int(token[3:5], 16)]).decode("utf-8", errors="replace")
        except ValueError:
            return token
    return token.replace("▁", " ")


def load_vocab(folder: str | Path) -> dict[int, str] | None:
    """id -> human-readable token from tokenizer.json (BPE byte-level or SentencePiece, WordPiece, Unigram)
    or vocab.txt; None when the folder has neither. Untrusted input: JSON only, size-capped."""
    folder = Path(folder)
    path = folder / "tokenizer.json"
    if path.is_file() and path.stat().st_size <= MAX_TOKENIZER_BYTES:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("model"), dict):
            return _decode_tokenizer_json(doc)
    vocab_txt = folder / "vocab.txt"
    if vocab_txt.is_file() and vocab_txt.stat().st_size <= MAX_TOKENIZER_BYTES:
        lines = vocab_txt.read_text(encoding="utf-8", errors="replace").splitlines()
        return {i: _wordpiece_text(tok) for i, tok in enumerate(lines)}
    return None


def _wordpiece_text(token: str) -> str:
    return token[2:] if token.startswith("##") else token


def _decode_tokenizer_json(doc: dict) -> dict[int, str]:
    model = doc["model"]
    kind = model.get("type")
    raw: dict[int, str] = {}
    vocab = model.get("vocab")
    if kind == "Unigram" and isinstance(vocab, list):
        raw = {i: str(e[0]) for i, e in enumerate(vocab) if isinstance(e, list) and e}
    elif isinstance(vocab, dict):
        raw = {int(i): str(t) for t, i in vocab.items() if isinstance(i, int)}
    for added in doc.get("added_tokens") or []:
        if isinstance(added, dict) and isinstance(added.get("id"), int):
            raw[added["id"]] = str(added.get("content", ""))
    decoder = json.dumps(doc.get("decoder") or {}) + json.dumps(doc.get("pre_tokenizer") or {})
    if kind == "WordPiece":
        return {i: _wordpiece_text(t) for i, t in raw.items()}
    if "ByteLevel" in decoder:
        table = {c: b for b, c in bytes_to_unicode().items()}
        return {i: _byte_level_text(t, table) for i, t in raw.items()}
    return {i: _sentencepiece_text(t) for i, t in raw.items()}

"""Read a model's vocabulary from its tokenizer files (tokenizer.json, tokenizer_config.json, vocab.txt): token id ->
readable string, and which ids are special. No tokenizer code is executed; every file is untrusted (regular files
only, size-capped, any JSON structure survived). Bytes that are not valid UTF-8 stay visible as ``\\xNN``."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from tpa_dist.files import read_bytes_limited

log = logging.getLogger("tpa_dist")

MAX_TOKENIZER_BYTES = 200_000_000
#: tokens that are never words, whatever the tokenizer says: BERT's [unusedNN], Gemma's <unusedNN>, byte/control
UNUSED = re.compile(r"^(\[unused\d+\]|<unused\d+>|<\|reserved_special_token_\d+\|>)$")
#: WordPiece vocab.txt without a tokenizer.json: BERT's conventional specials
WORDPIECE_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


class Vocab(dict):
    """id -> token text, plus the ids the tokenizer marks special (`special`), its size (`size`: rows past it
    are padding) and how it marks word boundaries (`scheme`: wordpiece — a continuation starts with ##;
    byte_level / sentencepiece — a word-initial piece starts with a space, shown decoded; None: unknown)."""

    def __init__(self, tokens: dict[int, str], special: set[int] | None = None, scheme: str | None = None) -> None:
        super().__init__(tokens)
        self.special = set(special or ())
        self.size = max(tokens, default=-1) + 1
        self.scheme = scheme

    def reason(self, token_id: int) -> str | None:
        """Why a row is not a word (special, unused, padding), or None."""
        if token_id >= self.size:
            return "padding"
        if token_id in self.special:
            return "special"
        text = self.get(token_id)
        if text is not None and UNUSED.match(text):
            return "unused"
        return None


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


def _byte_level_text(token: str, table: dict[str, int]) -> str:
    data = bytes(table[c] for c in token if c in table) if all(c in table for c in token) else token.encode()
    return data.decode("utf-8", errors="backslashreplace")


def _sentencepiece_text(token: str) -> str:
    if len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
        try:
            return bytes([int(token[3:5], 16)]).decode("utf-8", errors="backslashreplace")
        except ValueError:
            return token
    return token.replace("▁", " ")


def load_vocab(folder: str | Path) -> Vocab | None:
    """The vocabulary of a model folder, from tokenizer.json (byte-level or SentencePiece BPE, WordPiece,
    Unigram) or vocab.txt; None when there is neither or they cannot be used (ids then stand in for tokens; the
    reason is logged)."""
    folder = Path(folder)
    for name, parse in (("tokenizer.json", _parse_tokenizer_json), ("vocab.txt", _parse_vocab_txt)):
        path = folder / name
        if not path.exists():
            continue
        try:
            vocab = parse(read_bytes_limited(path, MAX_TOKENIZER_BYTES))
        except (OSError, ValueError, TypeError, KeyError, AttributeError, RecursionError, MemoryError) as exc:
            log.warning("%s: not usable, token ids stand in for tokens (%s: %s)", path, type(exc).__name__, exc)
            continue
        if vocab is not None:
            vocab.special |= _config_specials(folder, vocab)
            return vocab
    return None


def _config_specials(folder: Path, vocab: Vocab) -> set[int]:
    """Special ids from tokenizer_config.json's added_tokens_decoder (or, for a bare vocab.txt, BERT's
    conventional specials)."""
    out: set[int] = set()
    try:
        doc = json.loads(read_bytes_limited(folder / "tokenizer_config.json", MAX_TOKENIZER_BYTES))
    except (OSError, ValueError, RecursionError):
        doc = None
    decoder = doc.get("added_tokens_decoder") if isinstance(doc, dict) else None
    if isinstance(decoder, dict):
        for key, entry in decoder.items():
            if isinstance(entry, dict) and entry.get("special") is True and str(key).isdigit():
                out.add(int(key))
    if not out and not vocab.special:
        by_text = {t: i for i, t in vocab.items()}
        out = {by_text[t] for t in WORDPIECE_SPECIALS if t in by_text}
    return out


def _parse_tokenizer_json(raw: bytes) -> Vocab | None:
    doc = json.loads(raw.decode("utf-8"))
    if isinstance(doc, dict) and isinstance(doc.get("model"), dict):
        return _decode_tokenizer_json(doc)
    return None


def _parse_vocab_txt(raw: bytes) -> Vocab:
    lines = raw.decode("utf-8", errors="backslashreplace").splitlines()
    return Vocab(dict(enumerate(lines)), scheme="wordpiece")  # `##` kept: `##と` and `と` are different tokens


def _decode_tokenizer_json(doc: dict) -> Vocab:
    model = doc["model"]
    kind = model.get("type")
    raw: dict[int, str] = {}
    vocab = model.get("vocab")
    if kind == "Unigram" and isinstance(vocab, list):
        raw = {i: str(e[0]) for i, e in enumerate(vocab) if isinstance(e, list) and e}
    elif isinstance(vocab, dict):
        raw = {int(i): str(t) for t, i in vocab.items() if isinstance(i, int) and not isinstance(i, bool) and i >= 0}
    special: set[int] = set()
    added_tokens = doc.get("added_tokens")
    added: dict[int, str] = {}
    for entry in added_tokens if isinstance(added_tokens, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("id"), int) and entry["id"] >= 0:
            added[entry["id"]] = str(entry.get("content", ""))
            if entry.get("special") is True:
                special.add(entry["id"])
    decoder = json.dumps(doc.get("decoder") or {}) + json.dumps(doc.get("pre_tokenizer") or {})
    if kind == "WordPiece":
        tokens, scheme = dict(raw), "wordpiece"  # as the vocabulary writes them, `##` kept
    elif "ByteLevel" in decoder:
        table = {c: b for b, c in bytes_to_unicode().items()}
        tokens, scheme = {i: _byte_level_text(t, table) for i, t in raw.items()}, "byte_level"
    else:
        tokens = {i: _sentencepiece_text(t) for i, t in raw.items()}
        scheme = "sentencepiece" if any("▁" in t for t in raw.values()) else None
    tokens.update(added)  # added tokens are shown as written
    return Vocab(tokens, special, scheme)

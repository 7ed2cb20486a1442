"""The class of a token, from its text and the tokenizer's word-boundary convention (Vocab.scheme): what a cluster of
the embedding is made of. Classes, first match wins:

  digit         only digits (and the word-boundary marker)
  punctuation   only punctuation, symbols or spaces
  cjk           any Han, Hiragana, Katakana or Hangul character
  other_script  letters of a script other than Latin (Cyrillic, Arabic, Devanagari …)
  subword       a Latin continuation piece: WordPiece's `##x`, a BPE / SentencePiece piece without its word-start space
  word_initial  a Latin piece that starts a word
  latin         a Latin piece of a tokenizer whose word boundaries are unknown
"""

from __future__ import annotations

import unicodedata

TOKEN_CLASSES = ("subword", "word_initial", "digit", "punctuation", "latin", "cjk", "other_script")
_CJK = ("CJK", "HIRAGANA", "KATAKANA", "HANGUL", "IDEOGRAPHIC", "BOPOMOFO")


def _script(ch: str) -> str | None:
    """'latin', 'cjk', 'other' for a letter (or a CJK character), None for anything else."""
    name = unicodedata.name(ch, "")
    if name.startswith(_CJK) or " CJK " in name:
        return "cjk"
    if not unicodedata.category(ch).startswith("L"):
        return None
    return "latin" if name.startswith("LATIN") else "other"


def token_class(text: str | None, scheme: str | None) -> str | None:
    """The class of one token's text as Vocab holds it; None without a text."""
    if text is None:
        return None
    continuation = scheme == "wordpiece" and text.startswith("##") and len(text) > 2
    body = text[2:] if continuation else text
    core = body.strip()
    if not core:
        return "punctuation"
    if all(c.isdigit() for c in core):
        return "digit"
    scripts = {_script(c) for c in core} - {None}
    if not scripts:
        return "punctuation"
    if "cjk" in scripts:
        return "cjk"
    if "other" in scripts:
        return "other_script"
    if scheme == "wordpiece":
        return "subword" if continuation else "word_initial"
    if scheme in ("byte_level", "sentencepiece"):
        return "word_initial" if body[:1].isspace() else "subword"
    return "latin"

"""Text safe to print and to write into reports: control characters and unpaired surrogates escaped.

Decoded tokens may hold any code point (NUL, ESC, bidi overrides, lone surrogates from broken byte
sequences); reports and terminals get them as visible escapes (``\\x00``, ``U+202E``), so report.md stays
valid UTF-8 text and a terminal is never driven by a token.
"""

from __future__ import annotations

import unicodedata

_KEEP = {"\n", "\t"}


def _escape(ch: str) -> str:
    cp = ord(ch)
    if cp < 0x100:
        return f"\\x{cp:02x}"
    return f"U+{cp:04X}"


def printable(s: str, keep_newlines: bool = False) -> str:
    """`s` with every control, format, surrogate, unassigned or replacement character escaped
    (newline and tab kept only with `keep_newlines`)."""
    if s.isprintable() and "\ufffd" not in s:  # no Other or Separator but the space: nothing to escape (fast path:
        return s  # a 500-model report escapes ~145,000 cells)
    out = []
    for ch in s:
        if keep_newlines and ch in _KEEP:
            out.append(ch)
            continue
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cf", "Cs", "Cn", "Zl", "Zp") or ch == "\ufffd":
            out.append(_escape(ch))
        else:
            out.append(ch)
    return "".join(out)


def cell_number(v: float, decimals: int | None = None, significant: int = 4, sign: bool = False) -> str:
    """A float as a table or figure shows it — `decimals` fixed places, else `significant` digits; with `sign` a
    leading + on positive values — never as a negative zero ("-0", "-0.000", "+0"): a value that rounds to zero is
    written unsigned."""
    plus = "+" if sign else ""
    text = f"{v:{plus}.{decimals}f}" if decimals is not None else f"{v:{plus}.{significant}g}"
    if text[:1] in "+-" and float(text) == 0:
        return text[1:]
    return text

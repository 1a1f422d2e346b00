"""String and bytes literals decoded as cel-spec (and cel-cpp) read them.

cel-python 0.5.0 decodes some literals differently from cel-cpp: it keeps ``\\?`` and
``\\X41`` as written (cel-spec: ``?`` and ``A``), drops raw newlines inside ``'''…'''``
(``'''a⏎b'''`` was ``'ab'``), and keeps a raw carriage return. The gateway decodes every
string and bytes literal with this module instead, so a rule means the same on both
engines. Raw newlines: CR LF and a lone CR become LF (what cel-cpp does).
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["decode_literal"]

_SIMPLE: Final = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
                  "\\": "\\", "'": "'", '"': '"', "`": "`", "?": "?"}
_ESCAPE: Final = re.compile(
    r"\\(?:(?P<simple>[abfnrtv\\'\"`?])|(?P<oct>[0-3][0-7]{2})|[xX](?P<hex>[0-9a-fA-F]{2})"
    r"|u(?P<u4>[0-9a-fA-F]{4})|U(?P<u8>[0-9a-fA-F]{8}))")


class LiteralError(ValueError):
    """A malformed escape or code point (the analysis refuses these at compile time)."""


def decode_literal(token: str) -> str | bytes:
    """The value of a STRING_LIT, MLSTRING_LIT or BYTES_LIT token's text."""
    prefix = token[: len(token) - len(token.lstrip("rRbB"))].lower()
    body = token[len(prefix):]
    quote = 3 if body[:3] in ("'''", '"""') else 1
    text = body[quote:-quote].replace("\r\n", "\n").replace("\r", "\n")
    is_bytes = "b" in prefix
    if "r" in prefix:
        return text.encode("utf-8") if is_bytes else text
    return _unescape_bytes(text) if is_bytes else _unescape(text)


def _unescape(text: str) -> str:
    out, position = [], 0
    for match in _ESCAPE.finditer(text):
        out.append(_plain(text[position:match.start()]))
        out.append(_code_point(match, is_bytes=False))
        position = match.end()
    out.append(_plain(text[position:]))
    return "".join(out)


def _unescape_bytes(text: str) -> bytes:
    out, position = bytearray(), 0
    for match in _ESCAPE.finditer(text):
        out += _plain(text[position:match.start()]).encode("utf-8")
        value = _code_point(match, is_bytes=True)
        out += value if isinstance(value, bytes) else value.encode("utf-8")
        position = match.end()
    out += _plain(text[position:]).encode("utf-8")
    return bytes(out)


def _plain(text: str) -> str:
    if "\\" in text:
        raise LiteralError(f"invalid escape sequence {text[text.index(chr(92)):][:2]!r}")
    return text


def _code_point(match: re.Match, *, is_bytes: bool) -> str | bytes:
    if match.group("simple"):
        return _SIMPLE[match.group("simple")]
    if match.group("oct") or match.group("hex"):
        value = int(match.group("oct"), 8) if match.group("oct") else int(match.group("hex"), 16)
        return bytes([value]) if is_bytes else chr(value)
    value = int(match.group("u4") or match.group("u8"), 16)
    if value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
        raise LiteralError(f"invalid code point U+{value:X}")
    return chr(value)

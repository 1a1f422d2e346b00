"""Parsing with cel-python's lark grammar (both engines' static analysis reads this tree),
source positions, and the text helpers that let that grammar read cel-cpp's optional
syntax."""

from __future__ import annotations

import re
import threading
from typing import Final

import celpy
import lark
from celpy.celparser import CELParseError

from .api import CompileError
from .bounds import MAX_EXPRESSION_LENGTH, VARIABLES

_parser_lock = threading.Lock()
_environment: celpy.Environment | None = None


def _cel_environment() -> celpy.Environment:
    """The one ``celpy.Environment`` used to parse rules (its parser keeps state)."""
    global _environment
    if _environment is None:
        with _parser_lock:
            if _environment is None:
                _environment = celpy.Environment()
    return _environment


def _position(source: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset."""
    line = source.count("\n", 0, offset) + 1
    return line, offset - (source.rfind("\n", 0, offset) + 1) + 1


def first_position(source: str) -> tuple[int, int]:
    """Where the expression starts (its first non-blank character)."""
    stripped = len(source) - len(source.lstrip())
    return _position(source, min(stripped, max(len(source) - 1, 0)))


def parse(source: str) -> lark.Tree:
    """Parse with cel-python's grammar; raises :class:`CompileError` with a position."""
    if len(source) > MAX_EXPRESSION_LENGTH:
        raise CompileError(f"expression longer than {MAX_EXPRESSION_LENGTH} characters")
    environment = _cel_environment()
    try:
        with _parser_lock:  # CELParser.parse keeps the text on the instance
            return environment.compile(source)
    except CELParseError as ex:
        line, column = ex.line or 1, ex.column or 1
        raise CompileError(f"syntax error: {_parse_reason(ex.__context__, source)}", line, max(column, 1)) from None
    except (RecursionError, lark.exceptions.LarkError) as ex:
        raise CompileError(f"syntax error: {type(ex).__name__}") from None


def _parse_reason(error: BaseException | None, source: str) -> str:
    if isinstance(error, lark.exceptions.UnexpectedToken):
        if error.token.type == "$END":
            return "unexpected end of expression"
        return f"unexpected {error.token.value!r}"
    if isinstance(error, lark.exceptions.UnexpectedCharacters):
        return f"unexpected character {error.char!r}"
    return "invalid expression"



# --- the optional syntax of cel-cpp, seen through cel-python's grammar ----------------

_STRING_LITERAL: Final = re.compile(
    r"""[rRbB]{0,2}(?:'''(?:\\.|[^\\])*?'''|\"\"\"(?:\\.|[^\\])*?\"\"\"|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*")""",
    re.S,
)
_OPTIONAL_MARK: Final = re.compile(r"([.\[{,]\s*)\?")
_IDENTIFIER: Final = re.compile(r"(?<![\w.])([A-Za-z_]\w*)")


def mask_strings(source: str) -> str:
    """The source with the inside of every string literal blanked (same length)."""
    return _STRING_LITERAL.sub(lambda m: m.group(0)[0] + " " * (len(m.group(0)) - 1), source)


def without_optional_syntax(source: str) -> str:
    """``a.?b``, ``m[?k]``, ``{?k: v}``, ``[?x]`` read as their non-optional forms (same
    length), so that cel-python's grammar can analyse a cel-cpp rule."""
    masked = mask_strings(source)
    chars = list(source)
    for match in _OPTIONAL_MARK.finditer(masked):
        chars[match.end() - 1] = " "
    return "".join(chars)


_BACKTICK_FIELD: Final = re.compile(r"\.`([^`']*)`")


def without_backticks(source: str) -> str:
    """``m.`content-type``` read as ``m['content-type']`` (for the cost estimate only)."""
    return _BACKTICK_FIELD.sub(lambda m: f"['{m.group(1)}']", source)


def scan_variables(source: str) -> frozenset[str]:
    """The variables a source may read, found by scanning identifiers (a fallback)."""
    return frozenset(name for name in _IDENTIFIER.findall(mask_strings(source)) if name in VARIABLES)



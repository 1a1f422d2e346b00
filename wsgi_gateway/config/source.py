"""YAML that remembers where each value came from, so errors can name file and line.

Mappings load as :class:`LocDict` and sequences as :class:`LocList`; both keep the
line (1-based) of every key or item. Duplicate keys are an error, not a silent
"last one wins".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from ..errors import ConfigError


@dataclass(frozen=True, slots=True)
class Mark:
    """Where a scalar value starts: 1-based line and column, and its YAML style
    (``None`` plain, ``'`` or ``"`` quoted, ``|`` or ``>`` block)."""

    line: int
    column: int
    style: str | None


class LocDict(dict):
    """A dict that knows the line of each key (``lines[key]``), where each value
    starts (``marks[key]``) and its own ``line``."""

    line: int = 0
    lines: dict
    marks: dict


class LocList(list):
    """A list that knows the line of each item (``lines[i]``), where each starts
    (``marks[i]``) and its own ``line``."""

    line: int = 0
    lines: list
    marks: list


class _Loader(yaml.SafeLoader):
    """SafeLoader building LocDict / LocList and refusing duplicate keys."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LocDict:
    loader.flatten_mapping(node)
    out = LocDict()
    out.line, out.lines, out.marks = node.start_mark.line + 1, {}, {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise yaml.MarkedYAMLError("while reading a mapping", node.start_mark,
                                       "a key must be a plain value", key_node.start_mark)
        if key in out:
            raise yaml.MarkedYAMLError("while reading a mapping", node.start_mark,
                                       f"duplicate key {key!r}", key_node.start_mark)
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = key_node.start_mark.line + 1
        out.marks[key] = _mark(value_node)
    return out


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LocList:
    out = LocList(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.lines = [child.start_mark.line + 1 for child in node.value]
    out.marks = [_mark(child) for child in node.value]
    return out


def _mark(node: yaml.Node) -> Mark:
    style = getattr(node, "style", None) or None
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1, style)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_yaml(path: Path) -> object:
    """Parse ``path``; a syntax error becomes a ConfigError with file, line and column."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    return LocDict() if data is None else data


def mark_of(container: object, key: object) -> Mark | None:
    """Where ``container[key]``'s value starts, when the container came from YAML."""
    marks = getattr(container, "marks", None)
    try:
        return marks[key] if marks is not None else None
    except (KeyError, IndexError, TypeError):
        return None


def line_of(container: object, key: object) -> int:
    """The line of ``key`` inside ``container`` (a LocDict or LocList), or of the container."""
    lines = getattr(container, "lines", None)
    if isinstance(lines, dict) and key in lines:
        return lines[key]
    if isinstance(lines, list) and isinstance(key, int) and 0 <= key < len(lines):
        return lines[key]
    return getattr(container, "line", 0)

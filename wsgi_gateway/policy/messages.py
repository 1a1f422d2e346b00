"""Refusal reasons computed by ``messageExpression`` (``validate`` and ``deny``).

As Kubernetes' ValidatingAdmissionPolicy: a CEL string from the token, with the rule's
fixed ``message``/``reason`` as the fallback. The text reaches a problem body and the
logs, so it is made safe and short first.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any

from .rulefile import Rule

#: Longest reason a ``messageExpression`` may give (the rest is cut).
MAX_MESSAGE_LENGTH = 256


def refusal_reason(run: Callable[[Rule], Any], rule: Rule) -> str:
    """The reason for ``rule``'s refusal: its ``messageExpression`` when that gives a
    non-empty string (see :func:`bounded_message`), else its fixed message."""
    if rule.message_rule is None:
        return rule.message
    outcome = run(rule.message_rule)
    if outcome.error is None and isinstance(outcome.value, str):
        text = bounded_message(outcome.value)
        if text:
            return text
    return rule.message


def bounded_message(text: str) -> str:
    """``text`` fit for a problem body and a log line: no control, format or line
    separator characters (a reason cannot forge log lines or reorder text), runs of
    white space as one space, at most MAX_MESSAGE_LENGTH characters."""
    kept = "".join(" " if c.isspace() else c for c in text[: MAX_MESSAGE_LENGTH * 4]
                   if c.isspace() or unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Co", "Cn"))
    return " ".join(kept.split())[:MAX_MESSAGE_LENGTH]

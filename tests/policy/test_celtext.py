"""Values shown to people (explain, eval, trails) in CEL syntax, not Python reprs."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from wsgi_gateway.cel import get_engine
from wsgi_gateway.policy.celtext import cel_text


@pytest.mark.parametrize("value, text", [
    pytest.param(True, "true", id="bool"),
    pytest.param(None, "null", id="null"),
    pytest.param(7, "7", id="int"),
    pytest.param(1700000000.0, "1700000000.0", id="integral double"),
    pytest.param(float("nan"), "double('NaN')", id="nan"),
    pytest.param(float("-inf"), "double('-Infinity')", id="-inf"),
    pytest.param("it's\n", "'it\\'s\\n'", id="string escapes"),
    pytest.param("\x1b", "'\\x1b'", id="control character"),
    pytest.param(b"hi", "b'hi'", id="bytes"),
    pytest.param(["a", 1, False], "['a', 1, false]", id="list"),
    pytest.param({"a": [None]}, "{'a': [null]}", id="map"),
    pytest.param(datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc), "timestamp('2026-01-02T03:04:05Z')",
                 id="timestamp"),
    pytest.param(timedelta(seconds=90), "duration('90s')", id="duration"),
])
def test_cel_text(value, text):
    assert cel_text(value) == text


@pytest.mark.parametrize("engine", ["cel-python", "cel-cpp"])
@pytest.mark.parametrize("source", ["['a', 1, true, null, 2.5]", "{'k': [b'x', -3]}", "'q\\'uote'"])
def test_cel_text_reads_back_as_the_same_value(engine, source):
    cel = get_engine(engine)
    value = cel.compile(source).evaluate({})
    assert cel.compile(cel_text(value)).evaluate({}) == value

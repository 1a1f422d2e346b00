"""The bounds every rule and every value must stay within, shared by both engines.

Compile-time bounds (expression length, tree depth, comprehension nesting) keep the
parser and the static walk cheap; value bounds (:func:`~wsgi_gateway.cel.convert.convert`)
keep what a rule reads small, so the static cost estimate (:mod:`wsgi_gateway.cel.cost`)
holds; run-time bounds (steps, result strings, the deadline) catch what the estimate
cannot see. The cost budget and the deadline are configurable (``cel:`` in the config,
:class:`~wsgi_gateway.cel.limits.CelLimits`); these are the defaults and hard caps.
"""

from __future__ import annotations

from typing import Final

#: The only top-level names a rule may use.
VARIABLES: Final = ("claims", "token", "identity", "request", "session", "api", "now", "limits",
                     "cert")
#: The variables that are maps (``map(string, dyn)``); ``api`` is a string, ``now`` a timestamp.
MAP_VARIABLES: Final = frozenset({"claims", "token", "identity", "request", "session", "limits",
                                  "cert"})


#: Longest rule source, in characters.
MAX_EXPRESSION_LENGTH: Final = 8192
#: Deepest syntax tree (cel-python's lark tree: about 10 levels per parenthesis).
MAX_AST_DEPTH: Final = 250
#: Deepest nesting of comprehensions: ``a.all(x, b.exists(y, ...))`` is 2.
MAX_COMPREHENSION_NESTING: Final = 2
#: Comprehension steps per evaluation; reaching this many is an error (cel-cpp's budget).
MAX_ITERATIONS: Final = 10_000
#: Longest list :meth:`Engine.convert` accepts.
MAX_LIST_LENGTH: Final = 1000
#: Largest map :meth:`Engine.convert` accepts.
MAX_MAP_SIZE: Final = 1000
#: Longest string :meth:`Engine.convert` accepts, in code points.
MAX_STRING_LENGTH: Final = 8192
#: Longest bytes value :meth:`Engine.convert` accepts.
MAX_BYTES_LENGTH: Final = 8192
#: Most characters in all the strings (and bytes, and map keys) of one converted value:
#: the declared size of an input, which the static cost estimate relies on.
MAX_VALUE_CHARS: Final = 256 * 1024
#: Deepest nesting of maps and lists in one converted value.
MAX_VALUE_DEPTH: Final = 32
#: Most values (scalars, lists and maps) in one converted value.
MAX_VALUE_NODES: Final = 10_000
#: Longest string ``replace``, ``join`` and ``format`` may build (cel-python engine only).
MAX_RESULT_STRING_LENGTH: Final = 1 << 20

DEFAULT_ENGINE: Final = "cel-python"
ENGINES: Final = ("cel-python", "cel-cpp")
INSTALL_HINT: Final = "pip install 'wsgi-gateway[fast-cel]'"

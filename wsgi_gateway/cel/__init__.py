"""CEL for the gateway: the only package that imports celpy, lark or cel_expr_python.

One small interface, two engines, the same rules. Files by job: :mod:`.api` (errors,
protocols, registry, :func:`lookup`), :mod:`.bounds` (limits), :mod:`.convert` (the one
value converter), :mod:`.parse` and :mod:`.analysis` (static analysis on the shared
grammar), :mod:`.kinds`, :mod:`.cost` (the static cost estimate), :mod:`.celpy_engine`
(the default), :mod:`.celpy_functions` and :mod:`.celpy_strings` (its library),
:mod:`.celpy_internals` (everything that touches cel-python internals, version-pinned),
:mod:`.celcpp_engine` (cel-expr-python).

Rules compile once at load time and evaluate through :class:`Engine` and
:class:`Program`::

    engine = get_engine("cel-python")            # or "cel-cpp"; engines are singletons
    program = engine.compile("'admin' in token.scopes", result=bool)   # CompileError
    claims = engine.convert(verified_claims)     # once per token, cache it with the token
    activation = {"claims": claims, "token": token, "request": engine.convert(req), ...}
    program.evaluate(activation)                 # a plain Python value, or EvalError

``cel-python`` (:mod:`wsgi_gateway.cel.celpy_engine`) is the default and always
installed; ``cel-cpp`` (:mod:`wsgi_gateway.cel.celcpp_engine`) is Google's C++ CEL
through ``cel-expr-python``, the optional extra ``fast-cel``. Only :data:`VARIABLES` may
be used by a rule; anything else is a compile error on both engines.

Calling conventions that both engines share
-------------------------------------------
* :meth:`Program.evaluate` reads only the variables the expression uses
  (:attr:`Program.variables`); a missing one, or one of the wrong kind (``claims``,
  ``token``, ``identity``, ``request``, ``session`` must be maps, ``api`` a string,
  ``now`` a timestamp), is an :class:`EvalError`.
* :meth:`Engine.convert` takes JSON-like Python values (``dict``, ``list``/``tuple``,
  ``str``, ``int``, ``float``, ``bool``, ``None``, ``bytes``) and, at the top level only,
  ``datetime`` (for ``now``; a naive one is taken as UTC) and ``timedelta``. Any other
  Python type is a :class:`TypeError` (a programming error). A value over the size limits
  below, or a timestamp/duration *inside* a map or list (cel-expr-python 0.1.3 cannot bind
  one), is not an exception: ``convert`` returns a :class:`Rejected` marker, and every rule
  that reads that variable fails with :class:`EvalError` (fail closed) while rules that
  do not read it still work.
* Results come back as plain Python: ``bool``, ``int`` (also for ``uint``), ``float``,
  ``str``, ``bytes``, ``None``, ``list``, ``dict``, ``datetime`` (UTC) and ``timedelta``.
  A result that is (or contains) an error, a type value or an optional is an
  :class:`EvalError`; ``evaluate`` never returns an error value and never raises
  anything but :class:`EvalError`. Whether a result counts as "allow" (``is True``) is
  the caller's decision.
* :attr:`Program.references` lists the variable paths an expression reads, as far as
  they are statically known (``request.method``, ``request.headers.x-foo`` for
  ``request.headers['x-foo']``, a bare ``claims`` when the whole variable or a dynamic
  index is used). A path segment never contains ``.``, ``[`` or ``]``: an index with
  such a key stops the path at its container. :func:`lookup` resolves a path against the
  values, so results can be memoised on exactly these inputs.

Numbers
-------
JSON numbers keep the type JSON gave them: ``1700000000`` is an ``int`` and
``1700000000.0`` a ``double`` (``convert`` never turns an integral float into an int).
An integer in ``[2**63, 2**64)`` becomes a ``uint`` (what cel-expr-python does by
itself); one outside ``[-2**63, 2**64)`` becomes a ``double`` (the JSON reading of a
number; CEL has no bigger integer).

Mixed numbers compare the way cel-spec says and cel-cpp does at run time: ``==``, ``!=``,
``<``, ``<=``, ``>``, ``>=`` and ``in`` compare ``int``, ``uint`` and ``double`` by
value, so ``claims.iat == 1700000000`` and ``1700000000 < claims.iat`` are ``true`` for
a double ``iat`` on both engines; comparing values of different kinds for equality is
``false`` (``claims.sub == 1``, ``'a' in ['b', 1]``), not an error. The cel-python
engine replaces cel-python's operators to get this (plain cel-python errors on
``dyn(1) == 1.0``, on ``1700000000 < claims.iat`` with a double ``iat`` and on
``'a' in ['b', 1]``).

The trap that remains: **arithmetic never mixes number types** (CEL has no implicit
conversions): ``claims.iat + 60`` is an evaluation error when ``iat`` is a double, on
both engines. Write ``int(claims.iat) + 60`` or ``claims.iat + 60.0``. When both sides
are known at compile time (``1 == 1.0``, ``1 + 1.0``, ``1u == 1``), the rule does not
compile on either engine; use ``dyn(1) == 1.0`` if that is really meant.

Cost bounds
-----------
A rule must not stall a worker. Shared by both engines (checked when compiling):

* :data:`MAX_EXPRESSION_LENGTH` characters and :data:`MAX_AST_DEPTH` levels of syntax
  tree (measured: 23 levels of parentheses, 237 operands chained with ``&&``, 119 with
  ``+``; cel-cpp's own parser stops earlier, at 30 operands chained with ``+``);
* comprehensions (``all``, ``exists``, ``exists_one``, ``map``, ``filter``) nested at
  most :data:`MAX_COMPREHENSION_NESTING` deep;
* a *growing* ``replace()`` (one that can make a string longer: an empty or non-literal
  search string, or a non-literal or longer replacement) may not be applied to a string
  that may already be large (the result of ``join()``, ``format()`` or another growing
  ``replace()``), nor sit inside a comprehension body with a non-literal replacement:
  ``s.replace('', s).replace('', s)`` over an 8 KiB string would need 512 GB;
* the **static cost estimate** (:mod:`.cost`): from the data bounds below, every rule gets
  a worst case; one that could build a string or list over
  :data:`MAX_RESULT_STRING_LENGTH`, or cost more than ``cel.cost_limit``, is refused;
* a condition (``result=bool``) whose static kind is known and not bool; ``format()``
  with a non-literal template or a precision over 100; a result that is or holds an
  optional (cel-expr-python 0.1.3 crashes converting one); ``double``/``null`` map keys.

And on the data (in :meth:`Engine.convert`): lists of at most :data:`MAX_LIST_LENGTH`
elements, maps of at most :data:`MAX_MAP_SIZE` entries, strings of at most
:data:`MAX_STRING_LENGTH` code points, bytes of at most :data:`MAX_BYTES_LENGTH`, at most
:data:`MAX_VALUE_DEPTH` levels of nesting and :data:`MAX_VALUE_NODES` values in one
variable, and :data:`MAX_VALUE_CHARS` characters in all its strings. Over a limit, the variable is :class:`Rejected` (evaluation errors), never
truncated (a truncated group list could change a decision).

At run time, an evaluation may take fewer than :data:`MAX_ITERATIONS` comprehension steps
in all: cel-cpp enforces this itself (a budget fixed in cel-expr-python 0.1.3, measured:
9,999 steps pass, 10,000 fail), the cel-python engine counts the steps of its own macro
implementation to the same number and also stops at ``cel.timeout`` (read at every step).
A program compiled with ``result=bool`` raises :class:`EvalError` for any other result,
on both engines: a condition that is not a bool fails closed.

Known differences between engines
---------------------------------
What could not be made the same (``tests/cel/test_differential.py`` runs the cel-spec
conformance cases and the shipped rules through both engines; everything else agrees):

1. **Syntax only cel-cpp has**: optional syntax (``claims.?email``,
   ``m[?'k']``, ``optional.of(x)``, ``.orValue()``), backtick field names
   (``m.`content-type```) and ``42.charAt(1)`` without parentheses. cel-python does not
   parse them: a rule using them compiles only on cel-cpp. Use ``has(claims.email) ?
   claims.email : ''``, ``m['content-type']`` and ``(42)``.
2. **Compile-time type checking**: cel-cpp's checker knows every overload, so
   ``claims.sub.startsWith(1)``, ``[1] == ['a']``, ``[1] + ['a']`` or ``{'a': 1}[1]`` are compile errors
   there; the cel-python engine checks names, the kinds of literals and operators and
   obvious non-bool results, but such cases compile and fail (or return ``false``) at
   evaluation. Error messages and the exact position of a compile error (e.g. the end
   of the input vs the last token for a parse error; ``clams.x`` is reported at the dot
   by cel-cpp, at ``clams`` by cel-python) differ.
3. **Error messages** of evaluation errors differ (``no such key`` vs ``Key not found in
   map``); match :class:`EvalError`, not its text.
4. **Run-time bounds**: cel-cpp has no string-size limit inside an evaluation (the static
   estimate is all it gets) and no deadline; the cel-python engine also
   refuses to build a string over :data:`MAX_RESULT_STRING_LENGTH` in ``replace``,
   ``join`` and ``format``, and gives up after its deadline (a slow host can make a rule
   that is fine on cel-cpp fail on cel-python, never the other way round).
5. **Timestamps** cross into and out of Python with microseconds (``datetime``) on both,
   but cel-cpp keeps nanoseconds for values it computes itself:
   ``timestamp('2024-01-01T00:00:00.123456789Z') == timestamp('...788Z')`` is ``false``
   on cel-cpp, ``true`` on cel-python.
6. **Message construction**: ``google.protobuf.Timestamp{}`` compiles on cel-cpp (the
   well-known types are built in), not on cel-python (refused as message construction).
7. **Nesting**: cel-cpp's parser refuses more than about 30 operands chained with an
   arithmetic operator (``a + b + ...``); cel-python accepts up to :data:`MAX_AST_DEPTH`.
8. **Logging**: cel-cpp's RE2 writes a line to stderr for an invalid ``matches()``
   pattern (the evaluation still fails closed with :class:`EvalError`).

Made the same (so not differences): ``&&``/``||`` short-circuit on both; ``all``/``exists``
stop at the first decisive element on both, so both count the same comprehension steps
(``exists_one``, ``map`` and ``filter`` visit every element on both); mixed-number
comparisons and mixed-type equality (see Numbers); ``has()`` of a missing parent is an
error on both; a negative list index is an error on both; ``timestamp(int)`` takes epoch
seconds on both; ``size(null)``, ``'a' * 3`` and ``1.5 + 1`` are errors on both; string
literal escapes and raw newlines, IEEE double division, ``string(double)``,
``int(double)`` range, ``indexOf`` offsets, duration overflow and ``''.split('')`` follow
cel-cpp on both; results
are plain Python on both, and ``type()`` or ``optional`` values cannot leave an
evaluation on either.
"""

from __future__ import annotations

from .api import (
    CompileError, Engine, EngineUnavailable, EvalError, Program, Rejected, Unresolved, get_engine, lookup,
)
from .bounds import (
    DEFAULT_ENGINE, ENGINES, INSTALL_HINT, MAP_VARIABLES, MAX_AST_DEPTH, MAX_BYTES_LENGTH,
    MAX_COMPREHENSION_NESTING, MAX_EXPRESSION_LENGTH, MAX_ITERATIONS, MAX_LIST_LENGTH, MAX_MAP_SIZE,
    MAX_RESULT_STRING_LENGTH, MAX_STRING_LENGTH, MAX_VALUE_CHARS, MAX_VALUE_DEPTH, MAX_VALUE_NODES, VARIABLES,
)

__all__ = [
    "MAX_VALUE_CHARS",
    "DEFAULT_ENGINE", "ENGINES", "INSTALL_HINT", "MAP_VARIABLES", "MAX_AST_DEPTH", "MAX_BYTES_LENGTH",
    "MAX_COMPREHENSION_NESTING", "MAX_EXPRESSION_LENGTH", "MAX_ITERATIONS", "MAX_LIST_LENGTH",
    "MAX_MAP_SIZE", "MAX_RESULT_STRING_LENGTH", "MAX_STRING_LENGTH", "MAX_VALUE_DEPTH", "MAX_VALUE_NODES",
    "VARIABLES", "CompileError", "Engine", "EngineUnavailable", "EvalError", "Program", "Rejected",
    "Unresolved", "get_engine", "lookup",
]

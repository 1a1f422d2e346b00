"""The gateway's CEL library, the same on both engines: IP/CIDR, sets, base64.

Written once, in plain Python, and registered by each engine's adapter
(:mod:`.celpy_library` for cel-python, :class:`~.celcpp_engine.CelCppEngine` for cel-cpp),
so a rule means the same thing on both. After the libraries rule authors know:

* **IP and CIDR**, after Kubernetes' CEL library: ``cidr('10.0.0.0/8')`` and
  ``ip('10.1.2.3')`` check and normalise their text (an invalid one is an evaluation
  error, so a rule using it fails closed); ``cidr(c).containsIP(ip)``,
  ``cidr(c).containsCIDR(c2)``, ``cidr(c).prefixLength()``, ``ip(a).family()`` (4 or 6),
  ``ip(a).isLoopback()``, ``isIP(s)``, ``isCIDR(s)``. The values are normalised strings
  (``cidr('10.1.0.0/8')`` is ``'10.0.0.0/8'``), not a type of their own, so
  ``'10.0.0.0/8'.containsIP(request.remote_addr)`` works as well. An IPv4-mapped IPv6
  address (``::ffff:10.1.2.3``) is not in an IPv4 network, as in Go's ``netip``.
* **sets**, as cel-go's ``ext.Sets``: ``sets.contains(list, sublist)`` (every element of
  ``sublist`` is in ``list``), ``sets.intersects(a, b)`` (one element in common),
  ``sets.equivalent(a, b)`` (the same elements, duplicates ignored). Elements compare
  with CEL equality: ``1 == 1.0``, but ``true != 1``.
* **base64**, as cel-go's ``ext.Encoders``: ``base64.decode(string) -> bytes`` (standard
  alphabet, padding optional), ``base64.encode(bytes) -> string``.

Every function is linear in its input (sets hash their elements), and inputs are
bounded by the converter's limits.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from .kinds import BOOL, BYTES, INT, LIST, STRING


class LibraryError(ValueError):
    """A library function refused its input (becomes an evaluation error)."""


# --- IP and CIDR ---------------------------------------------------------------------------


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise LibraryError(f"cidr: {text!r} is not a CIDR network") from None


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise LibraryError(f"ip: {text!r} is not an IP address") from None


def cidr(text: str) -> str:
    if "/" not in text:
        raise LibraryError(f"cidr: {text!r} has no prefix length (/n)")
    return str(_network(text))


def ip(text: str) -> str:
    return str(_address(text))


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def is_cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return "/" in text


def contains_ip(network: str, address: str) -> bool:
    net, addr = _network(network), _address(address)
    return addr.version == net.version and addr in net


def contains_cidr(network: str, other: str) -> bool:
    net, sub = _network(network), _network(other)
    return sub.version == net.version and sub.subnet_of(net)  # type: ignore[arg-type]


def prefix_length(network: str) -> int:
    return _network(network).prefixlen


def family(address: str) -> int:
    return _address(address).version


def is_loopback(address: str) -> bool:
    return _address(address).is_loopback


# --- sets ---------------------------------------------------------------------------------


def _key(value: Any) -> Any:
    """A hashable key under which CEL-equal values meet (1 and 1.0 do, true and 1 do not)."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return ("number", value)
    if isinstance(value, (list, tuple)):
        return ("list", tuple(_key(v) for v in value))
    if isinstance(value, dict):
        return ("map", frozenset((_key(k), _key(v)) for k, v in value.items()))
    return (type(value).__name__, value)


def sets_contains(items: Sequence[Any], sublist: Sequence[Any]) -> bool:
    have = {_key(v) for v in items}
    return all(_key(v) in have for v in sublist)


def sets_intersects(a: Sequence[Any], b: Sequence[Any]) -> bool:
    have = {_key(v) for v in a}
    return any(_key(v) in have for v in b)


def sets_equivalent(a: Sequence[Any], b: Sequence[Any]) -> bool:
    return {_key(v) for v in a} == {_key(v) for v in b}


# --- base64 -------------------------------------------------------------------------------


def base64_decode(text: str) -> bytes:
    data = text.encode("ascii", "replace")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        pass
    try:  # unpadded, as cel-go's RawStdEncoding fallback
        return base64.b64decode(data + b"=" * (-len(data) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise LibraryError("base64.decode: not standard base64") from None


def base64_encode(data: bytes) -> str:
    return base64.b64encode(bytes(data)).decode("ascii")


# --- the table both engines register ---------------------------------------------------------


@dataclass(frozen=True)
class LibraryFunction:
    """One overload: its CEL name (``ns.name`` for a namespaced one), whether it is called
    as a method on its first parameter, the kinds of its parameters and result."""

    name: str
    member: bool
    params: tuple[str, ...]
    result: str
    impl: Callable[..., Any]

    @property
    def namespace(self) -> str | None:
        return self.name.partition(".")[0] if "." in self.name else None

    @property
    def short(self) -> str:
        return self.name.rpartition(".")[2]


LIBRARY: Final[tuple[LibraryFunction, ...]] = (
    LibraryFunction("cidr", False, (STRING,), STRING, cidr),
    LibraryFunction("ip", False, (STRING,), STRING, ip),
    LibraryFunction("isIP", False, (STRING,), BOOL, is_ip),
    LibraryFunction("isCIDR", False, (STRING,), BOOL, is_cidr),
    LibraryFunction("containsIP", True, (STRING, STRING), BOOL, contains_ip),
    LibraryFunction("containsCIDR", True, (STRING, STRING), BOOL, contains_cidr),
    LibraryFunction("prefixLength", True, (STRING,), INT, prefix_length),
    LibraryFunction("family", True, (STRING,), INT, family),
    LibraryFunction("isLoopback", True, (STRING,), BOOL, is_loopback),
    LibraryFunction("sets.contains", False, (LIST, LIST), BOOL, sets_contains),
    LibraryFunction("sets.intersects", False, (LIST, LIST), BOOL, sets_intersects),
    LibraryFunction("sets.equivalent", False, (LIST, LIST), BOOL, sets_equivalent),
    LibraryFunction("base64.decode", False, (STRING,), BYTES, base64_decode),
    LibraryFunction("base64.encode", False, (BYTES,), STRING, base64_encode),
)

#: Namespaced functions by namespace, for the static walk.
LIBRARY_NAMESPACES: Final = {
    ns: frozenset(f.short for f in LIBRARY if f.namespace == ns)
    for ns in {f.namespace for f in LIBRARY if f.namespace}
}
#: Result kinds by (short) name, for the static walk.
LIBRARY_KINDS: Final = {f.short: f.result for f in LIBRARY if f.short not in ("contains",)}

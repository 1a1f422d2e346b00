"""``wsgi-gateway keys``: create, list, show, revoke and rotate API keys.

``add_commands(subparsers)`` adds the ``keys`` command to the main parser
(``wsgi-gateway keys -c FILE create --api orders --policy gold``; ``-c`` may also follow
the subcommand). Exit status: 0 done, 1 no such key, 2 bad arguments or config, or a
store that cannot keep keys (memory: per process), 3 the store failed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time

from ..config.units import parse_duration
from ..errors import ConfigError, StoreError
from .apikey import merge_static, static_keys
from .apikeys_store import (
    KEY_ID,
    ApiKeys,
    KeyRecord,
    KeyStateError,
    key_digest,
    new_key,
)


def add_commands(subparsers) -> None:
    """Add ``keys create|list|show|revoke|rotate`` to the main command's subparsers."""
    from ..cli import config_option

    keys = subparsers.add_parser("keys", help="create, list, show, revoke or rotate API keys")
    config_option(keys)
    commands = keys.add_subparsers(required=True, metavar="COMMAND")

    create = commands.add_parser("create", help="issue a key: printed once, the store keeps its hash")
    create.add_argument("--api", required=True, help="the API the key is for")
    create.add_argument("--policy", action="append", default=[], dest="policies",
                        help="a policy of the config (repeatable; none: the API's default_policy)")
    create.add_argument("--expires", type=_lifetime, help="lifetime, e.g. 30d (default: never)")
    create.add_argument("--meta", action="append", default=[], type=_meta, metavar="K=V",
                        help="metadata rules read as claims.meta (repeatable)")
    create.add_argument("--subject", type=_subject, help="the identity's subject (default: the key id)")
    create.add_argument("--static", action="store_true",
                        help="store nothing: print the key and its keys_file entry")
    create.add_argument("--json", action="store_true", help="print one JSON object")
    create.set_defaults(run=_guarded(_create))

    listing = commands.add_parser("list", help="the keys of an API (store index and keys_file)")
    listing.add_argument("--api", help="one API (default: every API of the config)")
    listing.add_argument("--json", action="store_true", help="print a JSON list")
    listing.set_defaults(run=_guarded(_list))

    show = commands.add_parser("show", help="print a key's record as JSON (never the key)")
    show.add_argument("key_id", type=_key_id, help="the key ID (keys list shows them)")
    show.set_defaults(run=_guarded(_show))

    revoke = commands.add_parser("revoke", help="refuse a key on every worker within 1 s")
    revoke.add_argument("key_id", type=_key_id, help="the key ID (keys list shows them)")
    revoke.set_defaults(run=_guarded(_revoke))

    rotate = commands.add_parser("rotate", help="issue a replacement; the old key ends after --grace")
    rotate.add_argument("key_id", type=_key_id, help="the key ID (keys list shows them)")
    rotate.add_argument("--grace", type=_duration, default=86400.0,
                        help="how long the old key stays valid (default 24h; 0 ends it now)")
    rotate.add_argument("--expires", type=_lifetime,
                        help="lifetime of the new key (default: the old key's expiry)")
    rotate.add_argument("--json", action="store_true", help="print one JSON object")
    rotate.set_defaults(run=_guarded(_rotate))
    for command in (create, listing, show, revoke, rotate):
        config_option(command)


# -- the commands ----------------------------------------------------------------------

def _create(args) -> int:
    config = _config(args.config, need_store=not args.static)
    problem = _check_create(config, args.api, args.policies)
    if problem:
        return _error(problem, 2)
    meta = dict(args.meta)
    if args.static:
        return _create_static(args, meta)
    key, record = _keys(config).create(args.api, policies=args.policies, meta=meta,
                                       expires_in=args.expires, subject=args.subject)
    _print_key(key, record, args.json, f"created key {record.id} for API {record.api}")
    return 0


def _create_static(args, meta: dict) -> int:
    key, key_id = new_key()
    entry = {"id": key_id, "sha256": key_digest(key), "api": args.api,
             "policies": list(dict.fromkeys(args.policies)), "created": _iso(time.time())}
    if args.subject:
        entry["subject"] = args.subject
    if args.expires is not None:
        entry["expires"] = _iso(time.time() + args.expires)
    if meta:
        entry["meta"] = meta
    if args.json:
        print(json.dumps({"key": key, "keys_file_entry": entry}))
        return 0
    print(key)
    print("# add to the API's keys_file under keys: (it holds only the hash)")
    print(f"- {json.dumps(entry)}")
    return 0


def _list(args) -> int:
    config = _config(args.config)  # a memory store would list none of the workers' keys
    apis = [args.api] if args.api else [a.name for a in config.apis]
    unknown = [a for a in apis if a not in {x.name for x in config.apis}]
    if unknown:
        return _error(f"no API {unknown[0]!r} in {config.source}", 2)
    keys, static = _keys(config), _static(config)
    records = [merge_static(r, *keys.lookup(r.id)) for r in static.values() if r.api in apis]
    records += [r for api in apis for r in keys.list(api)]
    now = time.time()
    if args.json:
        print(json.dumps([r.public(now) for r in records], indent=2))
        return 0
    print(f"{'ID':16}  {'API':16}  {'STATE':8}  {'SOURCE':6}  {'EXPIRES (UTC)':20}  SUBJECT  POLICIES")
    for r in records:
        print(f"{r.id:16}  {r.api:16}  {r.state(now):8}  {r.source:6}  "
              f"{_iso(r.expires) if r.expires else '-':20}  {r.subject}  {','.join(r.policies) or '-'}")
    return 0


def _show(args) -> int:
    config = _config(args.config)
    keys, static = _keys(config), _static(config)
    record = (merge_static(static[args.key_id], *keys.lookup(args.key_id)) if args.key_id in static
              else keys.show(args.key_id))
    if record is None:
        return _error(f"no key {args.key_id}", 1)
    print(json.dumps(record.public(time.time()), indent=2))
    return 0


def _revoke(args) -> int:
    config = _config(args.config)
    keys, static = _keys(config), _static(config)
    if args.key_id in static:
        keys.revoke_static(static[args.key_id])
        print(f"revoked keys_file key {args.key_id} (refused on every worker within 1 s); "
              "also remove it from the file: the store may lose the revocation")
        return 0
    if keys.revoke(args.key_id) is None:
        return _error(f"no key {args.key_id}", 1)
    print(f"revoked key {args.key_id} (refused on every worker within 1 s)")
    return 0


def _rotate(args) -> int:
    config = _config(args.config)
    if args.key_id in _static(config):
        return _error(f"key {args.key_id} is in a keys_file: rotate it there (keys create "
                      "--static, add the new entry, give the old one an expires)", 2)
    try:
        key, new, old = _keys(config).rotate(args.key_id, grace=args.grace, expires_in=args.expires)
    except KeyStateError as err:
        return _error(str(err), 1)
    _print_key(key, new, args.json, f"key {new.id} replaces {old.id}, which stays valid until "
                                    f"{_iso(old.expires)}")
    return 0


# -- helpers ---------------------------------------------------------------------------

def _config(path: str, need_store: bool = True):
    from ..config import load_config

    config = load_config(path)
    if need_store and config.store.backend != "memcached":
        from ..config.deploy import MEMORY_STORE_PROBLEM

        raise ConfigError(f"{config.source}: store.backend: keys need a store every worker "
                          f"shares (memcached); {MEMORY_STORE_PROBLEM}")
    return config


def _keys(config) -> ApiKeys:
    from ..store import build_store

    from .digests import CredentialDigests

    return ApiKeys(build_store(config.store), digests=CredentialDigests.from_config(config))


def _static(config) -> dict[str, KeyRecord]:
    """Every keys_file record named by the config's apikey methods."""
    records: dict[str, KeyRecord] = {}
    for api in config.apis:
        for method in api.auth:
            if method.method == "apikey":
                records.update(static_keys(method.options, config))
    return records


def _check_create(config, api: str, policies: list[str]) -> str | None:
    found = next((a for a in config.apis if a.name == api), None)
    if found is None:
        return f"no API {api!r} in {config.source}; defined: {', '.join(a.name for a in config.apis)}"
    unknown = [p for p in policies if p not in config.policies]
    if unknown:
        return f"unknown policy {unknown[0]!r}; defined: {', '.join(config.policies) or 'none'}"
    if not any(m.method == "apikey" for m in found.auth):
        print(f"warning: API {api} does not list the apikey method in its auth", file=sys.stderr)
    return None


def _guarded(command):
    """``command``, with a store failure reported as exit status 3."""
    def run(args) -> int:
        try:
            return command(args)
        except StoreError as err:
            return _error(err.detail or "the store failed", 3)
    return run


def _print_key(key: str, record: KeyRecord, as_json: bool, message: str) -> None:
    if as_json:
        print(json.dumps({"key": key, **record.public(time.time())}))
        return
    print(key)
    expiry = f"expires {_iso(record.expires)}" if record.expires else "never expires"
    print(f"{message} ({expiry}; policies: {', '.join(record.policies) or 'the API default'}). "
          "The key is shown only this once: the store keeps only a digest of it.", file=sys.stderr)


def _error(message: str, status: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return status


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _lifetime(text: str) -> float:
    seconds = _duration(text)
    if seconds <= 0:
        raise argparse.ArgumentTypeError("a lifetime must be positive, e.g. 30d")
    return seconds


def _meta(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name) or len(value) > 256 \
            or not value.isprintable():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE (NAME of A-Z a-z 0-9 _ . -), got {text!r}")
    return name, value


def _subject(text: str) -> str:
    if not re.fullmatch(r"[!-~]{1,128}", text):
        raise argparse.ArgumentTypeError("a subject is 1-128 printable ASCII characters, no spaces")
    return text


def _key_id(text: str) -> str:
    if not KEY_ID.match(text):
        raise argparse.ArgumentTypeError("a key id is 16 lower-case hex digits (gwk_<id>_...)")
    return text

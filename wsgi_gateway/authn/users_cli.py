"""``wsgi-gateway users add|remove|list --file PATH``: manage the basic method's users.

The password is read from the terminal (asked twice, not echoed) or, with
--password-stdin, from the first line of standard input; never from the command line,
where other users of the host could read it in the process list. A new password needs
MIN_NEW_PASSWORD characters (NIST SP 800-63B for a single-factor password).
"""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path

from ..errors import ConfigError
from .users_file import (
    MIN_NEW_PASSWORD,
    add_user,
    check_name,
    check_new_password,
    load_users,
    remove_user,
)


class _Refused(Exception):
    """A request the command cannot carry out; printed as ``error: ...``, exit 1."""


def add_commands(subparsers) -> None:
    """Add ``users`` with ``add``, ``remove`` and ``list`` to the ``wsgi-gateway`` parser."""
    users = subparsers.add_parser("users", help="manage the users file of the basic method")
    commands = users.add_subparsers(required=True, metavar="COMMAND")

    add = commands.add_parser(
        "add", help="add a user, or set an existing user's password",
        description=f"Add a user, or set an existing user's password (at least "
                    f"{MIN_NEW_PASSWORD} characters: NIST SP 800-63B for a password used "
                    "alone), asked twice on the terminal or read from --password-stdin.")
    add.add_argument("name", help="the user name (no ':', no control characters)")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from the first line of standard input")
    add.add_argument("--group", action="append", dest="groups", metavar="GROUP",
                     help="the user's groups claim (repeatable; replaces the groups)")
    add.add_argument("--policy", action="append", dest="policies", metavar="POLICY",
                     help="the user's policies claim (repeatable; replaces the policies)")
    add.set_defaults(run=_run(_add))

    remove = commands.add_parser("remove", help="remove a user")
    remove.add_argument("name", help="the user name")
    remove.set_defaults(run=_run(_remove))

    listing = commands.add_parser("list", help="list users, hash parameters and claims")
    listing.set_defaults(run=_run(_list))
    for command in (add, remove, listing):
        command.add_argument("--file", required=True, type=Path, help="the users file (YAML)")


def _run(action):
    """``action(args)`` with refusals and broken files reported, never a traceback."""
    def run(args) -> int:
        try:
            action(args)
        except (_Refused, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        except ConfigError as err:
            for problem in err.problems:
                print(f"error: {problem}", file=sys.stderr)
            return 2
        return 0
    return run


def _add(args) -> None:
    import unicodedata

    problem = check_name(unicodedata.normalize("NFC", args.name))
    if problem:
        raise _Refused(problem)
    password = _password(args)
    problem = check_new_password(unicodedata.normalize("NFC", password))
    if problem:
        raise _Refused(problem)
    claims = {k: v for k, v in (("groups", args.groups), ("policies", args.policies)) if v}
    created = add_user(args.file, args.name, password, claims=claims)
    print(f"{'added' if created else 'updated'} user {args.name} in {args.file}")


def _remove(args) -> None:
    if not remove_user(args.file, args.name):
        raise _Refused(f"no user {args.name!r} in {args.file}")
    print(f"removed user {args.name} from {args.file}")


def _list(args) -> None:
    for user in load_users(args.file).values():  # hashes are never printed, only their method
        claims = json.dumps(dict(user.claims), ensure_ascii=False) if user.claims else ""
        print(f"{user.name}\t{user.method}\t{claims}".rstrip())


def _password(args) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise _Refused("no terminal to ask for the password: use --password-stdin")
    first = getpass.getpass(f"Password for {args.name}: ")
    if getpass.getpass("Repeat it: ") != first:
        raise _Refused("the two passwords differ")
    return first

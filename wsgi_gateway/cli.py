"""The ``wsgi-gateway`` command: serve, check."""

from __future__ import annotations

import argparse
import os
import sys

from .errors import ConfigError


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if os.getcwd() not in sys.path:  # as gunicorn does: the app is importable from here
        sys.path.insert(0, os.getcwd())
    try:
        return args.run(args)
    except ConfigError as err:
        for problem in err.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wsgi-gateway", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the gateway under gunicorn")
    serve.add_argument("-c", "--config", required=True, help="the gateway's YAML config")
    serve.add_argument("--app", help="the wrapped WSGI app, module:callable (overrides 'app')")
    serve.add_argument("--bind", action="append", help="address to listen on (repeatable)")
    serve.add_argument("--workers", type=int, help="number of gunicorn workers")
    serve.set_defaults(run=_serve)

    check = commands.add_parser("check", help="validate a config without serving")
    check.add_argument("-c", "--config", required=True, help="the gateway's YAML config")
    check.add_argument("--app", help="the wrapped WSGI app, module:callable (overrides 'app')")
    check.set_defaults(run=_check)
    return parser


def _check(args) -> int:
    from .serve import check

    config = check(args.config, args.app)
    print(f"{config.source}: ok ({len(config.apis)} APIs)")
    return 0


def _serve(args) -> int:
    from .serve import GatewayApplication, check

    config = check(args.config, args.app)
    overrides = {k: v for k, v in (("bind", args.bind), ("workers", args.workers)) if v}
    application = GatewayApplication(config, overrides)
    _print_banner(config, application.settings())
    application.run()
    return 0


def _print_banner(config, settings) -> None:
    binds = settings["bind"] if isinstance(settings["bind"], list) else [settings["bind"]]
    base = f"http://{binds[0]}"
    print(f"wsgi-gateway: {config.source} on {', '.join(binds)} "
          f"with {settings.get('workers')} workers", file=sys.stderr)
    for api in config.apis:
        print(f"  {api.name}: curl -i {base}{api.path}   (auth: "
              f"{', '.join(m.method for m in api.auth)})", file=sys.stderr)
    print(f"  health: curl -i {base}{config.ops.prefix}ready", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

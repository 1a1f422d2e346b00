"""The wsgi-gateway command: serve, check, rules test, explain, replay, sessions, keys, users.

Exit status: 0 done; 1 a test failed, a rule denies, or no such session or key; 2 bad
arguments or config, or a command the configured store cannot carry out; 3 the store
failed.
"""

from __future__ import annotations

import argparse
import os
import sys

from .errors import ConfigError

DESCRIPTION = ("An identity-aware API gateway: serve a WSGI app behind it, check its "
               "config, test its rules, and manage its sessions, API keys and users.")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if getattr(args, "needs_config", False) and not hasattr(args, "config"):
        parser.error("the following arguments are required: -c/--config "
                     "(before or after the subcommand)")
    if os.getcwd() not in sys.path:  # as gunicorn does: the app is importable from here
        sys.path.insert(0, os.getcwd())
    try:
        return args.run(args)
    except ConfigError as err:
        for problem in err.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2


def config_option(parser: argparse.ArgumentParser) -> None:
    """``-c/--config`` on a command and on each of its subcommands, so ``keys -c F create``
    and ``keys create -c F`` both work. No default (SUPPRESS): a subcommand's default
    would otherwise overwrite a value given before it; :func:`main` checks it is there."""
    parser.add_argument("-c", "--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="the gateway's YAML config (before or after the subcommand)")
    parser.set_defaults(needs_config=True)


def version() -> str:
    """The installed distribution's version (setup.cfg), or 'unknown' when run from a tree."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("wsgi-gateway")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wsgi-gateway", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the gateway under gunicorn")
    serve.add_argument("-c", "--config", metavar="FILE", required=True, help="the gateway's YAML config")
    serve.add_argument("--app", help="the wrapped WSGI app, module:callable (overrides 'app')")
    serve.add_argument("--bind", action="append", help="address to listen on (repeatable)")
    serve.add_argument("--workers", type=int, help="number of gunicorn workers")
    serve.set_defaults(run=_serve)

    check = commands.add_parser("check", help="validate a config without serving")
    check.add_argument("-c", "--config", metavar="FILE", required=True, help="the gateway's YAML config")
    check.add_argument("--app", help="the wrapped WSGI app, module:callable (overrides 'app')")
    check.add_argument("--format", choices=["text", "json"], default="text",
                       help="json: one object with ok, errors and warnings, for CI")
    check.set_defaults(run=_check)

    rules = commands.add_parser("rules", help="work with rule files")
    rules_commands = rules.add_subparsers(required=True, metavar="COMMAND")
    test = rules_commands.add_parser("test", help="run the rule test cases (NAME.test.yaml)")
    test.add_argument("paths", nargs="*", default=["rules"], help="test files or folders (default: rules)")
    test.add_argument("--engine", choices=["cel-python", "cel-cpp"], default="cel-python",
                      help="the CEL engine the rules are compiled and run with")
    test.add_argument("--format", choices=["text", "json"], default="text",
                      help="json: one object per run, for CI")
    test.add_argument("--coverage", action="store_true",
                      help="also list rules no case evaluated and conditions never true or false")
    test.set_defaults(run=_rules_test)

    sessions = commands.add_parser("sessions", help="show or revoke sessions in the store")
    config_option(sessions)
    sessions_commands = sessions.add_subparsers(required=True, metavar="COMMAND")
    show = sessions_commands.add_parser("show", help="print a session record")
    config_option(show)
    show.add_argument("session_id", help="the session ID (as in the request log)")
    show.set_defaults(run=_sessions, action="show")
    revoke = sessions_commands.add_parser(
        "revoke", help="refuse a session's credentials issued until now (every worker, within 1 s)")
    config_option(revoke)
    target = revoke.add_mutually_exclusive_group(required=True)
    target.add_argument("session_id", nargs="?", help="the session ID (as in the request log)")
    target.add_argument("--identity", metavar=("ISSUER", "SUBJECT"), nargs=2,
                        help="every session of this identity (all clients, all APIs)")
    revoke.set_defaults(run=_sessions, action="revoke")

    from .authn.apikey_cli import add_commands as add_key_commands

    add_key_commands(commands)
    from .authn.users_cli import add_commands as add_user_commands

    add_user_commands(commands)

    explain = commands.add_parser("explain", help="show how the rules decide a request")
    explain.add_argument("-c", "--config", metavar="FILE", required=True, help="the gateway's YAML config")
    source = explain.add_mutually_exclusive_group(required=True)
    source.add_argument("--token", help="an access token (verified with the config's providers)")
    source.add_argument("--claims", help="a JSON or YAML file of claims (not verified)")
    explain.add_argument("--request", required=True, help="'METHOD /path', e.g. 'GET /v1/orders'")
    explain.add_argument("--header", "-H", action="append", default=[], help="K:V (repeatable)")
    explain.add_argument("--format", choices=["text", "json"], default="text",
                         help="json: the decision and every step, as one object")
    explain.set_defaults(run=_explain)

    evaluate = commands.add_parser("eval", help="evaluate one CEL expression (no EXPR: a small REPL)")
    evaluate.add_argument("expression", nargs="?", metavar="EXPR",
                          help="a CEL expression; without it, one per line from stdin")
    evaluate.add_argument("--claims", help="a JSON or YAML file of claims (default: none)")
    evaluate.add_argument("--request", default="GET /", help="'METHOD /path?query' (default: 'GET /')")
    evaluate.add_argument("-H", "--header", action="append", default=[], help="'Name: value' (repeatable)")
    evaluate.add_argument("--api", default="api", help="the value of `api` (default: api)")
    evaluate.add_argument("--now", help="the value of `now`, RFC 3339 (default: the clock)")
    evaluate.add_argument("--engine", choices=["cel-python", "cel-cpp"], default="cel-python",
                          help="the CEL engine that evaluates the expression")
    evaluate.set_defaults(run=_eval)

    replay = commands.add_parser("replay", help="re-decide audit-logged requests under a candidate config")
    replay.add_argument("--log", metavar="AUDIT.jsonl", required=True, help="an audit log (audit.file)")
    replay.add_argument("-c", "--config", metavar="FILE", required=True, help="the candidate YAML config")
    replay.add_argument("--json", action="store_true", help="print JSON instead of a table")
    replay.add_argument("--strict", action="store_true",
                        help="fail (exit 1) also when a line cannot be re-decided (unknown)")
    replay.set_defaults(run=_replay)
    return parser


def _replay(args) -> int:
    """Exit 0: no decision changes; 1: some do (or, with --strict, cannot be re-decided)."""
    from .replay import render_json, render_table, replay

    results = replay(args.log, args.config)
    print(render_json(results) if args.json else render_table(results))
    failing = {"changed", "unknown"} if args.strict else {"changed"}
    return 1 if any(r.status in failing for r in results) else 0


def _check(args) -> int:
    from .config.deploy import shared_state_warnings
    from .serve import DEFAULT_SERVER, check

    warnings: list[str] = []
    if args.format == "json":
        import json

        try:
            config = check(args.config, args.app, warn=warnings.append)
        except ConfigError as err:
            print(json.dumps({"ok": False, "config": args.config, "errors": list(err.problems),
                              "warnings": warnings}, indent=2))
            return 2
        print(json.dumps({"ok": True, "config": str(config.source), "apis": len(config.apis),
                          "errors": [], "warnings": warnings}, indent=2))
        return 0
    config = check(args.config, args.app, warn=warnings.append)
    workers = config.server.get("workers", DEFAULT_SERVER["workers"])
    warnings += shared_state_warnings(config, workers)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{config.source}: ok ({len(config.apis)} APIs, {len(warnings)} warnings)")
    return 0


def _rules_test(args) -> int:
    from .cel import get_engine
    from .policy.testing import Coverage, find_test_files, report, report_json, run_test_file

    engine = get_engine(args.engine)
    coverage = Coverage() if args.coverage else None
    results = []
    for path in find_test_files(args.paths):
        results.extend(run_test_file(path, engine, coverage))
    print((report_json if args.format == "json" else report)(results, coverage))
    if not results:
        print("error: no rule test files found", file=sys.stderr)
        return 1
    return 0 if all(r.passed for r in results) else 1


def _sessions(args) -> int:
    import json

    from .config import load_config
    from .config.deploy import MEMORY_STORE_PROBLEM
    from .errors import StoreError
    from .limits.sessions import Sessions
    from .store import build_store

    config = load_config(args.config)
    if config.store.backend == "memory":  # revoking there would revoke nothing, yet say "revoked"
        raise ConfigError(f"{config.source}: store.backend: sessions {args.action} needs the "
                          f"store every worker shares (memcached); {MEMORY_STORE_PROBLEM}")
    sessions = Sessions(build_store(config.store), config.sessions)
    try:
        if args.action == "show":
            record = sessions.show(args.session_id)
            if record is None:
                print(f"no session {args.session_id}", file=sys.stderr)
                return 1
            print(json.dumps(record, indent=2))
        elif args.identity:
            sessions.revoke_identity(*args.identity)
            print(f"revoked every session of {args.identity[1]!r} from {args.identity[0]}")
        else:
            sessions.revoke(args.session_id)
            print(f"revoked session {args.session_id}")
    except StoreError as err:
        print(f"error: {err.detail}", file=sys.stderr)
        return 3
    return 0


def _explain(args) -> int:
    from .explain import explain

    result = explain(args.config, token=args.token, claims_file=args.claims,
                     request=args.request, headers=args.header)
    print(result.as_json() if args.format == "json" else result.text())
    return 0 if result.allowed or result.shadow else 1


def _eval(args) -> int:
    from .cel import get_engine
    from .policy.repl import Inputs, activation, evaluate, parse_now, parse_request, read_claims, repl

    method, path, headers = parse_request(args.request, args.header)
    engine = get_engine(args.engine)
    values = activation(engine, Inputs(read_claims(args.claims), method, path, headers, args.api,
                                       parse_now(args.now)))
    if args.expression is None:
        return repl(engine, values)
    ok, text = evaluate(engine, args.expression, values)
    print(text, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


def _serve(args) -> int:
    from .config.deploy import shared_state_warnings
    from .logs import configure_logging
    from .serve import GatewayApplication, prepare

    config, rule_files = prepare(args.config, args.app)
    overrides = {k: v for k, v in (("bind", args.bind), ("workers", args.workers)) if v}
    application = GatewayApplication(config, overrides, app=args.app, rule_files=rule_files)
    configure_logging(config.logging)
    _print_banner(config, application.settings())
    for warning in shared_state_warnings(config, application.settings().get("workers", 1)):
        if config.logging.format == "json":  # every line the process writes is a JSON object
            import logging

            logging.getLogger("wsgi_gateway").warning(warning)
        else:
            print(f"warning: {warning}", file=sys.stderr)
    application.run()
    return 0


def _print_banner(config, settings) -> None:
    binds = settings["bind"] if isinstance(settings["bind"], list) else [settings["bind"]]
    if config.logging.format == "json":  # every line the process writes is a JSON object
        import logging

        logging.getLogger("wsgi_gateway").info("serving", extra={"gw": {
            "config": str(config.source), "bind": binds, "workers": settings.get("workers"),
            "apis": [api.name for api in config.apis]}})
        return
    base = f"http://{binds[0]}"
    print(f"wsgi-gateway: {config.source} on {', '.join(binds)} "
          f"with {settings.get('workers')} workers", file=sys.stderr)
    for api in config.apis:
        print(f"  {api.name}: curl -i {base}{api.path}   (auth: "
              f"{', '.join(m.method for m in api.auth)})", file=sys.stderr)
    print(f"  ready:  curl -i {base}{config.ops.prefix}ready", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

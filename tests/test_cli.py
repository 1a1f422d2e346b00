"""The wsgi-gateway command as an operator meets it: it refuses what it cannot do,
says why, and takes its options where people put them (issue 10, items 6 and 9).

Commands run in-process through ``main(argv)`` (the console script's entry point) with
a real memcached where a store is needed; nothing is mocked.
"""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path

import pytest
import yaml

from wsgi_gateway.cli import _parser, main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _restore_sys_path(monkeypatch):
    """main() puts the working directory on sys.path, as gunicorn does: undo it."""
    monkeypatch.setattr(sys, "path", list(sys.path))


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """``wsgi-gateway ARGV``: (exit status, stdout, stderr)."""
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # argparse's own errors, --help and --version
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def write_config(tmp_path: Path, config: dict, name: str = "gw.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"app": "contrib.demo.echo:app", **config}))
    return str(path)


def memcached_config(memcached, **extra) -> dict:
    return {"store": {"backend": "memcached", "servers": [memcached.address]},
            "apis": [{"name": "orders", "path": "/orders", "auth": ["apikey"]}], **extra}


MEMORY = {"store": {"backend": "memory"},
          "apis": [{"name": "orders", "path": "/orders", "auth": ["apikey"]}]}


# -- tools refuse what they cannot do -------------------------------------------------

@pytest.mark.parametrize("args", [
    pytest.param(["sessions", "-c", "CONFIG", "revoke", "s1"], id="sessions revoke"),
    pytest.param(["sessions", "-c", "CONFIG", "revoke", "--identity", "https://idp", "alice"],
                 id="sessions revoke --identity"),
    pytest.param(["sessions", "-c", "CONFIG", "show", "s1"], id="sessions show"),
    pytest.param(["keys", "-c", "CONFIG", "list"], id="keys list"),
    pytest.param(["keys", "-c", "CONFIG", "show", "0123456789abcdef"], id="keys show"),
    pytest.param(["keys", "-c", "CONFIG", "create", "--api", "orders"], id="keys create"),
    pytest.param(["keys", "-c", "CONFIG", "revoke", "0123456789abcdef"], id="keys revoke"),
])
def test_store_commands_refuse_the_memory_store(tmp_path, capsys, args):
    config = write_config(tmp_path, MEMORY)
    code, out, err = run(capsys, *[config if a == "CONFIG" else a for a in args])
    assert code == 2, (out, err)
    assert "revoked" not in out and out == ""
    assert "store.backend" in err and "memcached" in err and "one process" in err


def test_keys_create_static_needs_no_store(tmp_path, capsys):
    config = write_config(tmp_path, MEMORY)
    code, out, _ = run(capsys, "keys", "create", "--static", "--api", "orders", "-c", config)
    assert code == 0 and out.startswith("gwk_")


# -- -c before or after the subcommand --------------------------------------------------

@pytest.mark.parametrize("order", [
    pytest.param(["keys", "-c", "CONFIG", "create", "--api", "orders"], id="keys -c FILE create"),
    pytest.param(["keys", "create", "-c", "CONFIG", "--api", "orders"], id="keys create -c FILE"),
    pytest.param(["keys", "create", "--api", "orders", "--config", "CONFIG"], id="keys create ... --config FILE"),
])
def test_config_option_before_or_after_the_subcommand(tmp_path, capsys, memcached, order):
    config = write_config(tmp_path, memcached_config(memcached))
    code, out, err = run(capsys, *[config if a == "CONFIG" else a for a in order])
    assert code == 0, err
    key_id = out.split("_")[1]
    code, out, _ = run(capsys, "keys", "show", key_id, "-c", config)
    assert code == 0 and key_id in out


@pytest.mark.parametrize("args, code, stream, text", [
    pytest.param(["revoke", "s1", "-c", "CONFIG"], 0, "out", "revoked session s1", id="revoke -c after"),
    pytest.param(["-c", "CONFIG", "revoke", "s1"], 0, "out", "revoked session s1", id="revoke -c before"),
    pytest.param(["show", "-c", "CONFIG", "nothing"], 1, "err", "no session nothing", id="show -c after"),
])
def test_sessions_take_the_config_anywhere(tmp_path, capsys, memcached, args, code, stream, text):
    config = write_config(tmp_path, memcached_config(memcached))
    status, out, err = run(capsys, "sessions", *[config if a == "CONFIG" else a for a in args])
    assert status == code and text in {"out": out, "err": err}[stream], (out, err)


@pytest.mark.parametrize("args", [
    pytest.param(["keys", "list"], id="keys"),
    pytest.param(["sessions", "show", "s1"], id="sessions"),
])
def test_a_missing_config_is_a_usage_error(capsys, args):
    code, _, err = run(capsys, *args)
    assert code == 2 and "-c/--config" in err


# -- --version and help ------------------------------------------------------------------

def test_version(capsys):
    from importlib.metadata import version

    code, out, _ = run(capsys, "--version")
    assert (code, out.strip()) == (0, f"wsgi-gateway {version('wsgi-gateway')}")


def _every_parser(parser: argparse.ArgumentParser, path=()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _every_parser(sub, (*path, name))


@pytest.mark.parametrize("path", [pytest.param(p, id=" ".join(p) or "wsgi-gateway")
                                  for p, _ in _every_parser(_parser())])
def test_help_is_plain_text(path):
    parser = dict(_every_parser(_parser()))[path]
    text = parser.format_help()
    for markup in ("``", ":class:", ":func:", ":meth:", ":data:", ".. "):
        assert markup not in text, f"{markup!r} in help of {' '.join(path)}:\n{text}"


def test_identity_metavar_names_each_value_once():
    parser = dict(_every_parser(_parser()))[("sessions", "revoke")]
    text = parser.format_help()
    assert "--identity ISSUER SUBJECT\n" in text or "--identity ISSUER SUBJECT]" in text
    assert "ISSUER SUBJECT ISSUER SUBJECT" not in text


# -- durations and passwords -------------------------------------------------------------------

def test_rotate_with_no_grace(tmp_path, capsys, memcached):
    config = write_config(tmp_path, memcached_config(memcached))
    _, out, _ = run(capsys, "keys", "-c", config, "create", "--api", "orders")
    old_id = out.split("_")[1]
    code, out, err = run(capsys, "keys", "-c", config, "rotate", old_id, "--grace", "0")
    assert code == 0, err
    code, out, _ = run(capsys, "keys", "-c", config, "show", old_id)
    assert code == 0 and '"state": "active"' not in out and '"state": "rotating"' not in out


@pytest.mark.parametrize("password", [
    pytest.param("abc", id="3 characters"),
    pytest.param("correct horse", id="13 characters"),
    pytest.param("x" * 14, id="one short"),
])
def test_users_add_refuses_a_short_password_and_says_why(tmp_path, capsys, monkeypatch, password):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO(password + "\n"))  # as a pipe gives it
    users = tmp_path / "users.yaml"
    code, _, err = run(capsys, "users", "add", "dora", "--file", str(users), "--password-stdin")
    assert code == 1 and "at least 15 characters" in err and "NIST SP 800-63B" in err
    assert f"this one has {len(password)}" in err and password not in err
    assert not users.exists()


def test_users_add_takes_a_passphrase(tmp_path, capsys, monkeypatch):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("correct horse battery\n"))
    code, out, err = run(capsys, "users", "add", "dora", "--file", str(tmp_path / "u.yaml"),
                         "--password-stdin")
    assert code == 0 and "added user dora" in out, err


# -- check: per-process state, did you mean, clear messages ------------------------------------

RATED = {"policies": {"gold": {"rate": "3/s"}},
         "apis": [{"name": "orders", "path": "/orders", "default_policy": "gold", "auth": ["apikey"]}]}


@pytest.mark.parametrize("config, warned", [
    pytest.param({**RATED, "server": {"workers": 2}}, ["rate limits and quotas", "sessions"],
                 id="memory store, 2 workers"),
    pytest.param(RATED, ["rate limits and quotas", "sessions"], id="memory store, default workers"),
    pytest.param({**RATED, "server": {"workers": 4}, "sessions": {"enabled": False}},
                 ["rate limits and quotas"], id="no sessions"),
    pytest.param({**RATED, "server": {"workers": 1}}, [], id="one worker"),
    pytest.param({"apis": [{"name": "open", "path": "/open"}]}, [], id="keyless: no sessions"),
    pytest.param({**RATED, "store": {"backend": "memcached", "servers": ["127.0.0.1:1"]},
                  "secret_key": {"env": "CLI_TEST_SECRET_KEY"}}, [], id="memcached"),
])
def test_check_warns_about_per_process_state(tmp_path, capsys, monkeypatch, config, warned):
    monkeypatch.setenv("CLI_TEST_SECRET_KEY", "k" * 32)
    code, out, err = run(capsys, "check", "-c", write_config(tmp_path, config))
    assert code == 0 and f"{len(warned)} warnings" in out, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == len(warned), err
    for warning, topic in zip(warnings, warned):
        assert "store.backend memory" in warning and topic in warning


def test_check_warns_when_a_shared_store_names_credentials_without_secret_key(tmp_path, capsys):
    config = {**RATED, "store": {"backend": "memcached", "servers": ["127.0.0.1:1"]}}
    code, out, err = run(capsys, "check", "-c", write_config(tmp_path, config))
    assert code == 0 and "1 warnings" in out
    assert "secret_key is not set: apikey credentials" in err and "plain SHA-256" in err


@pytest.mark.parametrize("config, rules, expected", [
    pytest.param({"apis": [{"name": "a", "path": "/a", "auth": ["jtw"]}]}, None,
                 "unknown authentication method 'jtw' (did you mean 'jwt'?)", id="method name"),
    pytest.param({"apis": [{"name": "a", "path": "/a", "rules": "r.yaml"}]},
                 "denny:\n  - when: 'true'\n    reason: no\n",
                 "denny: unknown section (did you mean 'deny'?)", id="rule section"),
    pytest.param({"apis": [{"name": "a", "path": "/a", "rules": "r.yaml"}]},
                 "deny:\n  - when: 'true'\n    reasn: no\n",
                 "deny[0].reasn: unknown key (did you mean 'reason'?)", id="rule key"),
    pytest.param({"policies": {"gold": {}},
                  "apis": [{"name": "a", "path": "/a", "rules": "r.yaml"}]},
                 "default_policy: glod\n", "unknown policy 'glod' (did you mean 'gold'?)",
                 id="policy in a rule file"),
    pytest.param({"server": {"workers": "two"}}, None,
                 "server.workers: expected a whole number (0 or more), got 'two'", id="workers: two"),
])
def test_check_names_the_fault_and_what_was_meant(tmp_path, capsys, config, rules, expected):
    if rules is not None:
        (tmp_path / "r.yaml").write_text(rules)
    code, out, err = run(capsys, "check", "-c", write_config(tmp_path, config))
    assert code == 2 and expected in err, err
    assert "Traceback" not in err and "invalid literal" not in err


def test_check_points_a_bad_hmac_secret_at_its_line_and_secret_encoding(tmp_path, capsys,
                                                                         monkeypatch):
    monkeypatch.setenv("CLI_TEST_HMAC", base64.b64encode(bytes(range(200, 240))).decode())
    path = tmp_path / "gw.yaml"
    path.write_text("providers:\n"
                    "  - name: local\n"
                    "    issuer: https://idp.example\n"
                    "    algorithms: [HS256]\n"
                    "    audiences: [api]\n"
                    "    keys:\n"
                    "      - secret: {env: CLI_TEST_HMAC}\n")
    code, _, err = run(capsys, "check", "-c", str(path))
    assert code == 2
    assert f"{path}:7: providers[0].keys[0]: secret: env:CLI_TEST_HMAC is not valid base64url" in err
    assert "secret_encoding: base64" in err and "Incorrect padding" not in err


def test_serve_warns_too(tmp_path):
    """The same warning on `serve`'s stderr, before gunicorn starts (a real process)."""
    import signal
    import subprocess

    from tests.support.processes import free_port, wait_for_port

    config = write_config(tmp_path, {**RATED, "server": {"workers": 2}})
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "wsgi_gateway.cli", "serve", "-c", config,
                                 "--bind", f"127.0.0.1:{port}"], cwd=REPO, stdout=out, stderr=out)
        try:
            wait_for_port(port)
        finally:  # SIGINT is gunicorn's quick shutdown (SIGTERM waits for booting workers)
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
    text = log.read_text()
    assert "warning:" in text and "each worker counts rate limits and quotas alone" in text, text

"""A gateway config for the observability tests: JWT, a rule file with named rules, a
rate-limited policy, metrics and the audit log on."""

from __future__ import annotations

import re
import textwrap

import yaml

from tests.support.gateways import gateway_config

RULES = textwrap.dedent("""\
    validate:
      - name: fresh
        expr: "!has(claims.stale)"
        message: "stale tokens are refused"
    assign:
      - name: vip
        policy: gold
        when: "'vip' in token.scopes"
    default_policy: basic
    deny:
      - name: no-delete
        when: "request.method == 'DELETE'"
        reason: "nobody deletes here"
    allow:
      - name: readers
        when: "request.method in ['GET', 'HEAD'] || claims.sub == 'writer'"
    """)


def observed_config(tmp_path, memcached_address: str | None, *, metrics: dict | None = None,
                    audit: dict | None = None, rules: str = RULES, name: str = "rules") -> dict:
    """The config dict; the rule file is written next to it."""
    (tmp_path / f"{name}.yaml").write_text(rules)
    config = gateway_config(memcached_address, policies={"basic": {"rate": "3/60s"},
                                                          "gold": {"rate": "1000/60s"}},
                            api={"rules": f"{name}.yaml"}, limits={"algorithm": "fixed"})
    config["app"] = "contrib.demo.echo:app"
    config["logging"] = {"access_log": False}
    config["metrics"] = {"enabled": True, "multiproc_dir": str(tmp_path / "prom"),
                         "flush_interval": "100ms", **(metrics or {})}
    config["audit"] = {"enabled": True, "file": str(tmp_path / "audit.jsonl"),
                       "claims": ["sub", "scope", "iss", "aud", "azp"], **(audit or {})}
    return config


def write(tmp_path, config: dict, name: str = "gateway") -> "Path":  # noqa: F821
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """The exposition text as {(name, labels): value}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        assert match, line
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match[2] or ""))
        out[(match[1], labels)] = float(match[3])
    return out


def value(found: dict, name: str, **labels) -> float:
    """The sum of every sample of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in found.items() if n == name and want <= set(ls))

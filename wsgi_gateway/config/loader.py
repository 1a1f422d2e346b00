"""Load a YAML config file into a :class:`GatewayConfig`, or fail naming every fault."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from ..errors import ConfigError
from .model import GatewayConfig
from .source import load_yaml
from .typed import Invalid, Where, build_dataclass, did_you_mean

_APP_REF = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*(\(\))?\Z")


def load_config(path: str | Path) -> GatewayConfig:
    """The validated config in ``path``. Raises ConfigError listing every problem."""
    path = Path(path).resolve()
    node = load_yaml(path)
    problems: list[str] = []
    where = Where(path, "", 1, problems)
    try:
        config = build_dataclass(GatewayConfig, node, where)
    except Invalid:
        raise ConfigError(problems) from None
    config = dataclasses.replace(config, source=path)
    _check_whole(config, node, where)
    if problems:
        raise ConfigError(problems)
    return config


def _check_whole(config: GatewayConfig, node: dict, where: Where) -> None:
    """Checks that span sections: unique API names and paths, the app reference."""
    if config.app is not None and not _APP_REF.match(config.app):
        where.key(node, "app").problem(f"expected module:callable, got {config.app!r}")
    seen_names: dict[str, int] = {}
    seen_paths: dict[str, int] = {}
    apis = node.get("apis", [])
    for i, api in enumerate(config.apis):
        at = where.key(node, "apis").key(apis, i)
        path = api.path.rstrip("/") or "/"
        if api.name in seen_names:
            at.key(apis[i], "name").problem(f"duplicate API name {api.name!r} (also apis[{seen_names[api.name]}])")
        if path in seen_paths:
            at.key(apis[i], "path").problem(f"duplicate path {api.path!r} (also apis[{seen_paths[path]}])")
        if (path + "/").startswith(config.ops.prefix) or config.ops.prefix.startswith(path + "/"):
            at.key(apis[i], "path").problem(f"overlaps the reserved ops prefix {config.ops.prefix!r}")
        seen_names.setdefault(api.name, i)
        seen_paths.setdefault(path, i)
        if api.default_policy is not None and api.default_policy not in config.policies:
            at.key(apis[i], "default_policy").problem(
                f"unknown policy {api.default_policy!r}{did_you_mean(api.default_policy, config.policies)}"
                f"; defined: {', '.join(config.policies) or 'none'}")
        if api.rules is not None and not (config.source.parent / api.rules).is_file():
            at.key(apis[i], "rules").problem(f"rule file {api.rules!r} not found "
                                             f"(relative to {config.source.parent})")
        for j, method in enumerate(api.auth):
            for name in getattr(method.options, "providers", ()):
                if name not in {p.name for p in config.providers}:
                    at.key(apis[i], "auth").key(apis[i]["auth"], j).problem(
                        f"unknown provider {name!r}"
                        f"{did_you_mean(name, [p.name for p in config.providers])}; defined: "
                        f"{', '.join(p.name for p in config.providers) or 'none'}")
    _check_providers(config, node, where)


def _check_providers(config: GatewayConfig, node: dict, where: Where) -> None:
    """Provider names and issuers are unique: a token's iss picks exactly one."""
    names: dict[str, int] = {}
    issuers: dict[str, int] = {}
    items = node.get("providers", [])
    for i, provider in enumerate(config.providers):
        at = where.key(node, "providers").key(items, i)
        if provider.name in names:
            at.key(items[i], "name").problem(f"duplicate provider name {provider.name!r}")
        if provider.issuer in issuers:
            at.key(items[i], "issuer").problem(
                f"issuer {provider.issuer!r} is also providers[{issuers[provider.issuer]}]'s")
        names.setdefault(provider.name, i)
        issuers.setdefault(provider.issuer, i)

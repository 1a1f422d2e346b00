"""What the package declares matches what it imports, and what it ships is there
(issue 10, "No loose ends"): dependencies both ways, LICENSE, py.typed, the CHANGELOG,
and no path in the docs or samples that points nowhere.
"""

from __future__ import annotations

import ast
import configparser
import re
import sys
from importlib.metadata import distribution, packages_distributions
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SETUP = configparser.ConfigParser()
SETUP.read(REPO / "setup.cfg")

# Declared on purpose without an import today; each says why (docs/development.md, Dependencies, too).
RESERVED: dict[str, str] = {}  # authlib is now the browser-login client (oidc_login)


def _names(block: str) -> set[str]:
    return {_normal(re.match(r"[A-Za-z0-9._-]+", line.strip())[0])
            for line in block.splitlines() if line.strip() and not line.strip().startswith("#")}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported_distributions(folder: Path) -> dict[str, set[str]]:
    """Distribution name -> files importing it, for every third-party import under ``folder``."""
    owners = {top: {_normal(d) for d in dists} for top, dists in packages_distributions().items()}
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top in {"wsgi_gateway", "tests", "contrib"}:
                    continue
                for dist in _namespace_owner(module, owners.get(top, {f"<no distribution installs {top}>"})):
                    found.setdefault(dist, set()).add(str(path.relative_to(REPO)))
    return found


def _namespace_owner(module: str, dists: set[str]) -> set[str]:
    """The distribution shipping ``module`` when its top level is a namespace package that
    several install (``opentelemetry``: api, sdk, exporters); import the sub-package."""
    if len(dists) < 2 or "." not in module:
        return dists
    parts = module.split(".")
    for depth in range(len(parts), 1, -1):  # the deepest folder only one of them ships
        folder = "/".join(parts[:depth]) + "/"
        owning = {d for d in dists if any(str(f).startswith(folder) for f in distribution(d).files or ())}
        if owning:
            return owning
    return dists


REQUIRED = _names(SETUP["options"]["install_requires"])
EXTRAS = {name: _names(block) for name, block in SETUP["options.extras_require"].items()}


def test_every_import_of_the_package_is_declared():
    imported = _imported_distributions(REPO / "wsgi_gateway")
    undeclared = {d: sorted(f) for d, f in imported.items()
                  if d not in REQUIRED | EXTRAS["fast-cel"] | EXTRAS["otel"]}
    assert not undeclared, f"imported but not in install_requires: {undeclared}"


def test_every_declared_dependency_is_imported():
    imported = _imported_distributions(REPO / "wsgi_gateway")
    unused = REQUIRED - set(imported) - set(RESERVED)
    assert not unused, f"declared in install_requires but never imported: {sorted(unused)}"
    assert "cel-expr-python" in imported, "the fast-cel extra is what the cel-cpp engine imports"
    assert EXTRAS["otel"] <= set(imported), "the otel extra is what observe/otel.py imports"


def test_reserved_dependencies_are_explained_in_the_docs():
    development = (REPO / "docs" / "development.md").read_text(encoding="utf-8")
    deps = development[development.index("## Dependencies"):]
    for name in RESERVED:
        assert name in deps.lower() and "later" in deps, name


@pytest.mark.parametrize("folder", ["tests", "contrib"])
def test_every_import_of_the_tests_and_contrib_is_declared(folder):
    imported = _imported_distributions(REPO / folder)
    allowed = REQUIRED | set().union(*EXTRAS.values())
    undeclared = {d: sorted(f) for d, f in imported.items() if d not in allowed}
    assert not undeclared, f"imported by {folder} but declared nowhere: {undeclared}"


def test_the_suite_can_run_in_random_order_and_in_parallel():
    assert {"pytest-randomly", "pytest-xdist"} <= EXTRAS["test"]


def test_license_typing_marker_and_changelog_ship():
    license_text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text
    assert SETUP["metadata"]["license"] == "Apache-2.0"
    assert (REPO / "wsgi_gateway" / "py.typed").is_file()
    assert "py.typed" in SETUP["options.package_data"]["wsgi_gateway"]
    changelog = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [Unreleased]" in changelog and "keepachangelog.com" in changelog


# -- paths the docs and samples name exist -------------------------------------------------------

_TEXT = [*REPO.glob("*.md"), *REPO.glob("docs/**/*.md"), *REPO.glob("contrib/**/*.md"), *REPO.glob("conf/*"), *REPO.glob("rules/*.yaml"),
         *REPO.rglob("wsgi_gateway/**/*.py"), *REPO.glob("contrib/**/*.py"), *REPO.glob("contrib/*.sh")]
_PATH = re.compile(r"(?<![\w./-])((?:conf|rules|contrib|tests|wsgi_gateway)/[\w./-]*\w)")


# Files the reader is told to create (each text says so), not files the repository ships.
READER_FILES = {
    "conf/production.yaml": "the operator's copy of conf/production.sample.yaml",
    "conf/service-tokens.yaml": "the tokens file of the example custom authenticator",
    "conf/jwt.yaml": "contrib/bench/README.md: stands for the reader's own token-protected config",
    "rules/google.yaml": "docs/recipes/google.md: the rule file the reader writes beside the config",
}


def _named_paths() -> list[tuple[str, str]]:
    out = []
    for file in _TEXT:
        for path in _PATH.findall(file.read_text(encoding="utf-8")):
            if path not in READER_FILES:
                out.append((str(file.relative_to(REPO)), path))
    return sorted(set(out))


@pytest.mark.parametrize("file, path", [pytest.param(f, p, id=f"{f}: {p}") for f, p in _named_paths()])
def test_named_paths_exist(file, path):
    assert (REPO / path).exists() or (REPO / path).with_suffix(".py").exists() or \
        list(REPO.glob(path)), f"{file} names {path}, which does not exist"


@pytest.mark.parametrize("needle", ["PRODUCT.md", "FIELD-NOTES", "make demo", "conf/gateway.yaml"])
def test_no_reference_to_what_is_not_in_the_repository(needle):
    citing = [str(f.relative_to(REPO)) for f in _TEXT if needle in f.read_text(encoding="utf-8")]
    assert not citing, f"{needle} is cited by {citing} but is not in the repository"

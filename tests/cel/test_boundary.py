"""The CEL boundary: only wsgi_gateway/cel imports the engines and their parser, and the
module that touches cel-python internals refuses a version it was not checked against."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import wsgi_gateway
from wsgi_gateway.cel import celpy_internals

PACKAGE = Path(wsgi_gateway.__file__).parent
ENGINE_MODULES = ("celpy", "lark", "cel_expr_python")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_only_the_cel_package_imports_the_engines() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE)}: {sorted(_imports(path) & set(ENGINE_MODULES))}"
        for path in PACKAGE.rglob("*.py")
        if path.parent.name != "cel" and _imports(path) & set(ENGINE_MODULES)
    ]
    assert offenders == []


def test_policy_does_not_know_lark() -> None:
    texts = {p.name: p.read_text() for p in (PACKAGE / "policy").glob("*.py")}
    assert [name for name, text in texts.items() if "lark" in text] == []


def test_celpy_internals_run_only_on_the_checked_cel_python() -> None:
    from importlib.metadata import version

    installed = version("cel-python")
    low, high = celpy_internals.CHECKED_VERSIONS
    # fails loudly when someone installs another cel-python: re-check the internals first
    assert celpy_internals.check_version() == installed, (
        f"cel-python {installed} installed; celpy_internals was checked against >={low},<{high}")


@pytest.mark.parametrize("installed", [
    pytest.param("0.4.9", id="older"),
    pytest.param("0.6.0", id="newer minor"),
    pytest.param("1.0.0", id="newer major"),
])
def test_an_unchecked_version_is_refused(installed: str) -> None:
    with pytest.raises(celpy_internals.CelPythonVersionError, match=installed):
        celpy_internals.check_version(installed)

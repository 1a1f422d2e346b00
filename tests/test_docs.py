"""The documentation cannot drift from the code (issue 16): every configuration key, CLI
argument and CEL variable has a description, the committed reference pages are what the
code generates, and the site builds with ``mkdocs build --strict``.
"""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
import sys

import pytest

from contrib import docs_reference as ref
from wsgi_gateway.serve import check
from wsgi_gateway.policy.variables import DECLARED, DESCRIBED

KEYS = list(ref.keys())


def test_the_walk_reaches_every_section():
    paths = {path for path, _ in ref.sections()}
    assert {"", "store", "store.on_failure", "apis[]", "apis[].upstream", "apis[].upstream.tls",
            "providers[]", "providers[].keys[]", "policies.<name>", "policies.<name>.access[]",
            "auth[jwt]", "auth[basic].lockout"} <= paths
    assert any(k.path == "policies.<name>" and k.name == "rate_key" for k in KEYS)


@pytest.mark.parametrize("key", [pytest.param(k, id=f"{k.path or 'top'}.{k.name}") for k in KEYS])
def test_every_config_key_has_a_description(key):
    assert key.doc, (f"{key.owner.__module__}.{key.owner.__qualname__}.{key.field.name} has no "
                     "attribute docstring (a string literal on the line after the field)")


def _arguments():
    for line, parser, help_text in ref.commands(ref.cli_parser()):
        yield pytest.param(line, None, help_text, id=line)
        for action in ref.arguments(parser):
            yield pytest.param(line, action.dest, action.help, id=f"{line} {action.dest}")


@pytest.mark.parametrize("command, argument, help_text", list(_arguments()))
def test_every_command_and_argument_has_help(command, argument, help_text):
    assert help_text, f"{command} {argument or ''}: give it help= in its add_argument/add_parser"


def test_every_declared_variable_is_described_and_nothing_else():
    declared = {path for path, _ in ref.variable_rows()}
    assert sorted(declared - set(DESCRIBED)) == [], "declared but not described in DESCRIBED"
    assert sorted(set(DESCRIBED) - declared) == [], "described but not declared in DECLARED"
    assert set(DECLARED) <= declared


@pytest.mark.parametrize("name", sorted(ref.GENERATED))
def test_the_committed_reference_page_is_what_the_code_generates(name):
    committed = (ref.PAGES / name).read_text(encoding="utf-8")
    assert committed == ref.GENERATED[name](), (
        f"docs/reference/{name} is stale: run python -m contrib.docs_reference")


@pytest.mark.parametrize("text, shown", [
    pytest.param(0.1, "100ms", id="milliseconds"),
    pytest.param(30.0, "30s", id="seconds"),
    pytest.param(300.0, "5m", id="minutes"),
    pytest.param(30 * 86400.0, "30d", id="days"),
    pytest.param(604800.0, "1w", id="weeks"),
    pytest.param(0, "0", id="zero"),
])
def test_durations_read_as_written(text, shown):
    assert ref.duration(text) == shown


def test_a_field_without_a_docstring_is_found(tmp_path):
    """The check itself can fail: a dataclass with one undocumented field is caught."""
    source = tmp_path / "undocumented_model.py"
    source.write_text("from dataclasses import dataclass\n\n@dataclass(frozen=True)\nclass M:\n"
                      "    a: int = 1\n    \"\"\"Documented.\"\"\"\n    b: int = 2\n", encoding="utf-8")
    sys.path.insert(0, str(tmp_path))
    try:
        module = importlib.import_module("undocumented_model")
        assert dict(ref.field_docs(module.M)) == {"a": "Documented."}
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("undocumented_model", None)


def test_the_site_builds_strictly(tmp_path):
    """Without --quiet: MkDocs 1.6 counts warnings for --strict only when it logs them."""
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ref.REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-4000:]
    assert (tmp_path / "site" / "reference" / "configuration" / "index.html").is_file()


def _yaml_blocks(folder: str):
    for page in sorted((ref.REPO / "docs" / folder).glob("*.md")):
        blocks = re.findall(r"```yaml\n(.*?)```", page.read_text(encoding="utf-8"), re.S)
        rule_files = {m[1]: b for b in blocks if (m := re.match(r"# (rules/[\w.-]+\.yaml)\n", b))}
        for i, block in enumerate(blocks):
            if "providers:" in block:
                yield pytest.param(block, rule_files, id=f"{page.name}[{i}]")


@pytest.mark.parametrize("block, rule_files", list(_yaml_blocks("recipes")))
def test_every_recipe_config_passes_check(block, rule_files, tmp_path):
    """The "exact config" of each provider recipe passes ``wsgi-gateway check`` (loaded and
    built, its rule files compiled), with the shipped rules and those the page writes."""
    shutil.copytree(ref.REPO / "rules", tmp_path / "rules")
    for example in (ref.REPO / "contrib" / "examples").glob("*/rules.yaml"):  # as from the top
        copy = tmp_path / example.relative_to(ref.REPO)
        copy.parent.mkdir(parents=True)
        shutil.copy(example, copy)
    for name, text in rule_files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    path = tmp_path / "recipe.yaml"
    path.write_text(block, encoding="utf-8")
    warnings: list[str] = []
    config = check(path, "contrib.demo.echo:app", warn=warnings.append)  # as --app would
    assert config.providers and config.apis
    assert not warnings, warnings


def _python_blocks():
    for page in sorted((ref.REPO / "docs" / "python").glob("*.md")):
        for i, block in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.S)):
            if "assert " in block:  # a block with assertions is a runnable example
                yield pytest.param(block, id=f"{page.name}[{i}]")


@pytest.mark.parametrize("block", list(_python_blocks()))
def test_runnable_python_examples_in_the_docs_run(block):
    exec(compile(block, "<docs example>", "exec"), {"__name__": "docs_example"})

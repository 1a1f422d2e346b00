"""MkDocs hook: the reference pages are rendered from the code at every build.

The committed ``docs/reference/*.md`` files are what GitHub shows; the site never uses
them as they are: each build renders the page again from the config model, the CLI
parsers and the declared CEL variables (``contrib/docs_reference.py``), so the site cannot
drift from the code even if someone forgets to regenerate. ``tests/test_docs.py`` keeps
the committed files equal to the rendering.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from contrib.docs_reference import GENERATED  # noqa: E402


def on_page_markdown(markdown, page, config, files):  # noqa: ARG001 - MkDocs' signature
    """The generated text for a reference page; every other page as written."""
    name = page.file.src_uri
    if name.startswith("reference/") and name.removeprefix("reference/") in GENERATED:
        return GENERATED[name.removeprefix("reference/")]()
    return markdown

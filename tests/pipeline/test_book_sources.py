"""The book's sources as a reader meets them outside the page body."""

from __future__ import annotations

import json
import re

from dpmia_utils import paths

HEADING = re.compile(r"^#{1,6} (.*)$", flags=re.MULTILINE)
#: Fenced code (its "# comments" are not headings).
FENCE = re.compile(r"^(```|~~~).*?^\1", flags=re.MULTILINE | re.DOTALL)


def _headings() -> list[tuple[str, str]]:
    found = []
    for page in sorted((paths.REPO_ROOT / "book").glob("*.md")):
        text = FENCE.sub("", page.read_text(encoding="utf-8"))
        found += [(page.name, h) for h in HEADING.findall(text)]
    for notebook in sorted(paths.notebooks_dir().glob("*.ipynb")):
        for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] == "markdown":
                text = FENCE.sub("", "".join(cell["source"]))
                found += [(notebook.name, h) for h in HEADING.findall(text)]
    return found


def test_headings_hold_no_math():
    # Headings are also the sidebar, the page contents and the browser tab's title, where
    # MathJax does not typeset: "$\varepsilon$" would show as "\(\varepsilon\)". Use "ε".
    headings = _headings()
    assert len(headings) > 50
    assert [(where, h) for where, h in headings if "$" in h] == []

"""Sphinx extension: the Binder button of an executed notebook opens its clean source notebook.

Executed copies live in book/_generated/, which is git-ignored, so a Binder session (a clone of
the repository) does not have them. sphinx-book-theme builds the launch URL from the page's own
path; this rewrites it to notebooks/<name>.ipynb, the committed notebook with a `parameters` cell.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.util import logging

GENERATED_DIR = "book/_generated/"
SOURCE_DIR = "notebooks/"

logger = logging.getLogger(__name__)


def _rewrite_launch_urls(buttons: list[dict[str, Any]]) -> int:
    """Replace the generated path by the source path in every launch link; return how many."""
    changed = 0
    for button in buttons:
        if button.get("type") == "group":
            changed += _rewrite_launch_urls(button.get("buttons", []))
        elif GENERATED_DIR in button.get("url", ""):
            button["url"] = button["url"].replace(GENERATED_DIR, SOURCE_DIR)
            changed += 1
    return changed


def point_launch_buttons_at_sources(
    app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any
) -> None:
    """html-page-context handler: fix the launch links of pages built from book/_generated/."""
    if not pagename.startswith(GENERATED_DIR):
        return
    launch_groups = [
        b for b in context.get("header_buttons", []) if b.get("label") == "launch-buttons"
    ]
    if not _rewrite_launch_urls(launch_groups):
        return
    source = Path(app.confdir) / SOURCE_DIR / (pagename.removeprefix(GENERATED_DIR) + ".ipynb")
    if not source.is_file():
        logger.warning(
            "%s: its Binder button opens %s, which does not exist",
            pagename,
            source.relative_to(app.confdir),
            location=pagename,
        )


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the handler after sphinx-book-theme has added its launch buttons (priority 501)."""
    app.connect("html-page-context", point_launch_buttons_at_sources, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

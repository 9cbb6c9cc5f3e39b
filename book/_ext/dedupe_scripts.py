"""Sphinx extension: drop repeated inline <script> blocks from every page.

Sphinx 7.3 re-adds the registry's scripts when it prepares writing, naming an inline script's
file '' where the first copy had None, so each inline script registered after the builder
started (sphinx-thebe's `const THEBE_JS_URL = ...`, sphinx-togglebutton's selector) is emitted
twice. The second `const` declaration is a SyntaxError in the browser on every page.
"""

from __future__ import annotations

from typing import Any

from sphinx.application import Sphinx


def _script_key(script: Any) -> tuple:
    """What makes two script entries the same tag: file (None and '' alike) and attributes."""
    if isinstance(script, str):
        return (script, ())
    attributes = tuple(sorted((str(k), str(v)) for k, v in script.attributes.items()))
    return (script.filename or "", attributes)


def drop_duplicate_scripts(
    app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any
) -> None:
    """html-page-context handler: keep the first of identical script entries."""
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen: set[tuple] = set()
    unique = []
    for script in scripts:
        key = _script_key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the handler late, after every extension has added its page scripts."""
    app.connect("html-page-context", drop_duplicate_scripts, priority=950)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

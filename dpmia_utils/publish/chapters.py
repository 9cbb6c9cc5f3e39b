"""The executed notebooks as the book shows them: today's prose, and a DP run beside the baseline.

Papermill executed each notebook when its run ran, and a run is not executed again while its
code is unchanged; only the code cells of a stage notebook count (pipeline.codeversion). So the
book dresses each executed notebook in its source's current markdown and cell tags, provided
its code cells are the source's, cell for cell; otherwise the executed copy is shown as it ran.
The outputs are never touched, but for one thing: TensorFlow's start-up lines that every kernel
prints to stderr on a machine without a GPU (`without_startup_noise`); the run folder's own
notebook keeps them.

The training and attack chapters put two runs on one page: the baseline without DP, then the
same model and lambda trained with DP-SGD, each under its own heading with the parameters
papermill injected. One page rather than two keeps each page's Binder button pointing at its
source notebook.

Each page that shows a profile's results opens with a note of what made them (`with_note`,
holding `pages.provenance_note`), written when the book is assembled.
"""

from __future__ import annotations

import copy
import re
from typing import Any

Notebook = dict[str, Any]

#: Tags that Jupyter Book reads: the notebook's default parameters mean nothing to a reader
#: (papermill overrode them), while the injected values are the run's provenance, one click away.
BOOK_CELL_TAGS = {"parameters": "remove-cell", "injected-parameters": "hide-input"}
#: The markdown cell that opens a chapter's closing sections (Summary, What's next).
CLOSING_HEADING = "## Summary"

_HEADING = re.compile(r"^(#{1,5}) ", flags=re.MULTILINE)
#: TensorFlow 2.15's import registers its CUDA plugins twice and says so at ERROR level, even
#: with no GPU (it cannot be silenced without hiding real C++ errors): noise on every page.
STARTUP_NOISE = re.compile(r"Unable to register (cuDNN|cuFFT|cuBLAS) factory")


def _joined(text: str | list[str]) -> str:
    """A notebook string field (a cell's source, a stream's text), stored whole or as lines."""
    return "".join(text) if isinstance(text, list) else text


def _text(cell: dict[str, Any]) -> str:
    return _joined(cell.get("source", ""))


def _tags(cell: dict[str, Any]) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def _injected(cell: dict[str, Any]) -> bool:
    return "injected-parameters" in _tags(cell)


def tag_for_book(notebook: Notebook) -> Notebook:
    """Add the display tags of BOOK_CELL_TAGS to the parameter cells (in place; returned)."""
    for cell in notebook.get("cells", []):
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        for tag, display in BOOK_CELL_TAGS.items():
            if tag in tags and display not in tags:
                tags.append(display)
    return notebook


def without_startup_noise(notebook: Notebook) -> Notebook:
    """Drop STARTUP_NOISE lines from stderr outputs, and outputs left empty (in place; returned).

    Every other stderr line (warnings, errors) stays where it was.
    """
    for cell in notebook.get("cells", []):
        kept = []
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                text = _joined(output.get("text", ""))
                lines = [ln for ln in text.splitlines(True) if not STARTUP_NOISE.search(ln)]
                if not "".join(lines).strip():
                    continue
                output = {**output, "text": "".join(lines)}
            kept.append(output)
        if "outputs" in cell:
            cell["outputs"] = kept
    return notebook


def redress(executed: Notebook, source: Notebook) -> Notebook:
    """The executed notebook in its source's markdown and tags, if the code cells are the same.

    Code cells keep their outputs and execution counts; papermill's injected-parameters cell
    stays after the `parameters` cell. A notebook whose code differs from the source's (run
    with other code) is returned unchanged.
    """
    ran = [c for c in executed["cells"] if c["cell_type"] == "code"]
    injected = [c for c in ran if _injected(c)]
    ran = [c for c in ran if not _injected(c)]
    code = [c for c in source["cells"] if c["cell_type"] == "code"]
    if [_text(c) for c in ran] != [_text(c) for c in code]:
        return executed
    outputs = iter(ran)
    cells = []
    for cell in source["cells"]:
        if cell["cell_type"] != "code":
            cells.append(copy.deepcopy(cell))
            continue
        dressed = copy.deepcopy(next(outputs))
        dressed.setdefault("metadata", {})["tags"] = list(_tags(cell))
        cells.append(dressed)
        if "parameters" in _tags(cell):
            cells.extend(copy.deepcopy(injected))
    return {**executed, "cells": cells}


def _parts(notebook: Notebook) -> tuple[list, list, list, list]:
    """(front, injected, body, closing): title to `parameters` cell, papermill's parameters,
    the steps, and Summary onwards (empty if the notebook has no Summary)."""
    cells = notebook["cells"]
    marked = [i for i, c in enumerate(cells) if "parameters" in _tags(c)]
    start = marked[0] + 1 if marked else 1
    injected = [c for c in cells if _injected(c)]
    rest = [c for c in cells[start:] if not _injected(c)]
    closing = next(
        (
            i
            for i, c in enumerate(rest)
            if c["cell_type"] == "markdown" and _text(c).startswith(CLOSING_HEADING)
        ),
        len(rest),
    )
    return cells[:start], injected, rest[:closing], rest[closing:]


def _demoted(cells: list, id_prefix: str = "") -> list:
    """The cells with every markdown heading one level deeper (## -> ###) and ids prefixed."""
    out = []
    for cell in cells:
        cell = copy.deepcopy(cell)
        if id_prefix and "id" in cell:
            cell["id"] = f"{id_prefix}{cell['id']}"[:64]
        if cell["cell_type"] == "markdown":
            cell["source"] = _demote_headings(_text(cell))
        out.append(cell)
    return out


def _demote_headings(text: str) -> str:
    lines, fenced = [], False
    for line in text.splitlines(keepends=True):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        lines.append(line if fenced else _HEADING.sub(r"#\1 ", line))
    return "".join(lines)


def _markdown(cell_id: str, text: str) -> dict[str, Any]:
    return {"cell_type": "markdown", "id": cell_id, "metadata": {}, "source": text}


def beside(
    baseline: Notebook, dp: Notebook | None, baseline_heading: str, dp_heading: str | None
) -> Notebook:
    """One page: the baseline's chapter with the DP run's steps after its own.

    The page keeps the baseline's title, overview and prerequisites and its closing sections
    (Summary, What's next) once; each run's steps go under `baseline_heading` and
    `dp_heading` (markdown, each opening with a level-2 heading), one level deeper than in
    the notebook. Without a DP run, `dp_heading` stands alone and says why (None: no section).
    """
    front, injected, body, closing = _parts(baseline)
    cells = [*front, _markdown("dpmia-baseline-run", baseline_heading), *injected]
    cells += _demoted(body)
    if dp_heading is not None:
        cells.append(_markdown("dpmia-dp-run", dp_heading))
    if dp is not None:
        _, dp_injected, dp_body, _ = _parts(dp)
        cells += _demoted([*dp_injected, *dp_body], id_prefix="dp-")
    cells += closing
    return {**baseline, "cells": cells}


#: The id of the markdown cell `with_note` adds.
NOTE_CELL_ID = "dpmia-provenance"


def with_note(notebook: Notebook, text: str) -> Notebook:
    """The notebook with `text` in a note after its front (title to `parameters` cell and
    papermill's parameters), or after its first cell if it has no `parameters` cell."""
    cells = notebook["cells"]
    marked = [i for i, c in enumerate(cells) if "parameters" in _tags(c)]
    at = marked[0] + 1 if marked else min(1, len(cells))
    while at < len(cells) and _injected(cells[at]):
        at += 1
    note = _markdown(NOTE_CELL_ID, f"```{{note}}\n{text.rstrip()}\n```\n")
    return {**notebook, "cells": [*cells[:at], note, *cells[at:]]}

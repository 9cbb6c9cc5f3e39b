"""Committed notebooks carry no outputs, and each has one `parameters` cell near the top."""

import re
from pathlib import Path

import nbformat
import pytest

from dpmia_utils.pipeline.codeversion import PROFILE_STAGES, RUN_STAGE_NOTEBOOKS

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def test_every_stage_notebook_the_pipeline_executes_exists():
    names = {nb.name for nb in NOTEBOOKS}
    stages = {f"{stage}.ipynb" for stage in (*PROFILE_STAGES, *RUN_STAGE_NOTEBOOKS)}
    assert len(stages) == 4 and stages <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_clean(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs, f"{path.name} cell {index} has outputs"
            assert cell.execution_count is None, f"{path.name} cell {index} has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_exactly_one_parameters_cell_near_the_top(path):
    nb = nbformat.read(path, as_version=4)
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: expected one cell tagged 'parameters', found {tagged}"
    code_cells_before = sum(1 for c in nb.cells[: tagged[0]] if c.cell_type == "code")
    assert code_cells_before <= 1, f"{path.name}: parameters cell should be among the first cells"


def _markdown(nb) -> list[str]:
    return [cell.source for cell in nb.cells if cell.cell_type == "markdown"]


#: Every notebook is a chapter in the Pythia cookbook shape, these headings in this order.
CHAPTER_HEADINGS = ("## Overview", "## Prerequisites", "## Imports", "## Summary", "## What's next")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_reads_as_a_chapter(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    lines = [line for text in _markdown(nb) for line in text.splitlines()]
    found = [lines.index(heading) for heading in CHAPTER_HEADINGS if heading in lines]
    assert len(found) == len(CHAPTER_HEADINGS), f"{path.name}: missing one of {CHAPTER_HEADINGS}"
    assert found == sorted(found), f"{path.name}: chapter headings out of order"
    # The book shows a run's chapter twice (baseline, DP) and keeps one Summary: it finds the
    # closing sections by this heading at the start of a cell (publish.chapters).
    from dpmia_utils.publish.chapters import CLOSING_HEADING

    assert sum(text.startswith(CLOSING_HEADING) for text in _markdown(nb)) == 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_defines_no_functions_or_classes(path):
    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            found = re.findall(r"^\s*(?:async\s+def|def|class)\s+\w+", cell.source, re.MULTILINE)
            assert not found, (
                f"{path.name} cell {index} defines {found}: logic belongs in the package"
            )


#: A fold count written into prose ("5-fold", "five folds", "cv=5") is a fact of one profile.
FOLD_COUNT = re.compile(
    r"\b(\d+|two|three|four|five|six|seven|eight|nine|ten)[- ]folds?\b|\bcv\s*=\s*\d",
    re.IGNORECASE,
)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_prose_does_not_hard_code_the_fold_count(path):
    nb = nbformat.read(path, as_version=4)
    for text in _markdown(nb):
        assert not FOLD_COUNT.search(text), f"{path.name}: {FOLD_COUNT.search(text)[0]!r}"


#: Calls into the package that a reader should see.
PACKAGE_CALL = re.compile(r"\b(stages|attacks|plots|tables|figure2|quotes)\.\w+\(")
HIDING_TAGS = {"hide-input", "hide-cell", "remove-input", "remove-cell"}
SHORT_CELL = 10  # lines; longer cells may fold their plumbing


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_short_cells_that_call_the_package_are_visible(path):
    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not PACKAGE_CALL.search(cell.source):
            continue
        tags = set(cell.metadata.get("tags", []))
        if len(cell.source.splitlines()) <= SHORT_CELL:
            assert not tags & HIDING_TAGS, f"{path.name} cell {index} hides a package call"

"""Committed notebooks carry no outputs, and each has one `parameters` cell near the top."""

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

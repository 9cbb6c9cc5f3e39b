"""The fixed cost of a run: what every run pays before and around its training and attacks.

A run executes two stage notebooks (02 target training, 03 membership inference), each in a
fresh papermill kernel whose set-up cell imports the package (and TensorFlow), loads the
prepared dataset from the cache and draws the splits. This module executes exactly those
first cells (the parameters cell and the set-up cell of notebook 02, with a run of the given
profile) in a fresh kernel, twice, as a run does, and reports the wall time of each: the
per-run overhead that no engine speed-up touches.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import nbformat

from .. import paths
from ..pipeline.codeversion import RUN_STAGE_NOTEBOOKS

#: How many code cells of the stage notebook make its set-up: parameters, imports and data.
SETUP_CELLS = 2


def setup_notebook(stage: str = RUN_STAGE_NOTEBOOKS[0]) -> nbformat.NotebookNode:
    """The stage notebook cut after its set-up cell (parameters, imports, data, splits)."""
    nb = nbformat.read(paths.notebooks_dir() / f"{stage}.ipynb", as_version=4)
    code = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    nb.cells = nb.cells[: code[SETUP_CELLS - 1] + 1]
    return nb


def time_setup(parameters: dict[str, Any], kernels: int) -> list[float]:
    """Wall seconds of `kernels` fresh kernels each executing the set-up (papermill, as a run)."""
    import papermill

    seconds = []
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "setup.ipynb"
        nbformat.write(setup_notebook(), source)
        for i in range(kernels):
            started = time.perf_counter()
            papermill.execute_notebook(
                str(source),
                str(Path(folder) / f"out{i}.ipynb"),
                parameters={**parameters, "run_dir": folder},
                progress_bar=False,
                cwd=folder,
            )
            seconds.append(time.perf_counter() - started)
    return seconds


def run_overhead(profile_name: str = "paper", repeats: int = 2) -> dict[str, float]:
    """Per-run fixed seconds for a run of `profile_name`: two kernels' set-up, median of repeats.

    The profile's data must be prepared (its cache built), as it is once a grid has started.
    """
    from ..pipeline.profiles import load_profile

    profile = load_profile(paths.parameters_dir() / f"{profile_name}.yml")
    parameters = profile.notebook_parameters(profile.runs[-1])
    kernel = statistics.median(time_setup(parameters, kernels=repeats))
    return {"per_kernel": kernel, "per_run": len(RUN_STAGE_NOTEBOOKS) * kernel}

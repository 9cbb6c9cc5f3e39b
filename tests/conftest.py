"""Shared fixtures: an isolated results store and cache, and the smoke grid executed once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
# One TensorFlow thread per process: test processes and papermill kernels share 2 cores.
os.environ.setdefault("DPMIA_TF_THREADS", "1")

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def isolated_store(tmp_path_factory) -> Path:
    """A private results root and data cache for this test session (kernels inherit them)."""
    root = tmp_path_factory.mktemp("dpmia")
    saved = {k: os.environ.get(k) for k in ("DPMIA_RESULTS_DIR", "DPMIA_CACHE_DIR")}
    os.environ["DPMIA_RESULTS_DIR"] = str(root / "results")
    os.environ["DPMIA_CACHE_DIR"] = str(root / "cache")
    yield root
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def smoke_grid(isolated_store):
    """The smoke profile executed end to end through the runner (Dask, papermill) once."""
    from dpmia_utils.runner import run_grid

    report = run_grid(
        REPO / "parameters" / "smoke.yml",
        results_root=isolated_store / "results",
        n_workers=2,
        progress=False,
    )
    return report, isolated_store / "results" / "smoke"

"""Shared fixtures: an isolated results store and cache, and the smoke grid executed once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
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
def dask_scheduler(isolated_store):
    """A real `dask scheduler` and a `dask worker` (2 processes) on localhost; yields the address."""
    bin_dir = Path(sys.executable).parent
    info = isolated_store / "scheduler.json"
    common = ["--no-dashboard"]
    scheduler = subprocess.Popen(
        [
            bin_dir / "dask",
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--scheduler-file",
            info,
            *common,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    while not info.exists() and time.time() < deadline:
        time.sleep(0.2)
    assert info.exists(), "dask scheduler did not start within 60 s"
    worker = subprocess.Popen(
        [
            bin_dir / "dask",
            "worker",
            "--scheduler-file",
            info,
            "--nworkers",
            "2",
            "--nthreads",
            "1",
            "--memory-limit",
            "0",
            *common,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield json.loads(info.read_text())["address"]
    finally:
        for process in (worker, scheduler):
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="session")
def smoke_grid(isolated_store, dask_scheduler):
    """The smoke profile executed once, end to end, through the runner on a real Dask cluster."""
    from dpmia_utils.pipeline.grid import run_grid

    report = run_grid(
        REPO / "parameters" / "smoke.yml",
        results_root=isolated_store / "results",
        scheduler=dask_scheduler,
        progress=False,
    )
    return report, isolated_store / "results" / "smoke"

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
# Fixtures worth building once per test session: the tests that use one run on one worker.
SHARED_SESSION_FIXTURES = ("smoke_grid",)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config, items):
    """Group tests by the expensive fixture they share, for `make test`'s parallel workers.

    `make test` runs pytest-xdist with `--dist loadgroup`: tests of one `xdist_group` go to
    one worker, every other test to whichever worker is free. Without the groups each worker
    would build the smoke grid (2 minutes) and each module-scoped fixture it touches again.
    """
    for item in items:
        group = shared_fixture_group(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))


def shared_fixture_group(item) -> str | None:
    """The smoke grid's group, the test module's if it uses a module-scoped fixture, or None."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    names = info.names_closure
    for name in SHARED_SESSION_FIXTURES:
        if name in names:
            return name
    for name in names:
        if any(d.scope == "module" for d in info.name2fixturedefs.get(name, ())):
            return item.nodeid.split("::")[0]
    return None


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
    # The scheduler creates its file before it writes it: wait for the address, not the file.
    address = None
    deadline = time.time() + 120
    while address is None and time.time() < deadline:
        time.sleep(0.2)
        try:
            address = json.loads(info.read_text())["address"]
        except (OSError, ValueError, KeyError):
            continue
    assert address, "dask scheduler did not write its address within 120 s"
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
        yield address
    finally:
        for process in (worker, scheduler):
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="session")
def smoke_grid(isolated_store, dask_scheduler, request):
    """The smoke profile executed once, end to end, through the runner on a real Dask cluster."""
    from dpmia_utils.pipeline.grid import run_grid

    first = getattr(request, "_pyfuncitem", None)  # the test that asked for it first
    if os.environ.get("PYTEST_XDIST_WORKER") and first is not None:
        marks = {m.args[0] for m in first.iter_markers("xdist_group") if m.args}
        assert "smoke_grid" in marks, (
            f"{first.nodeid} gets the smoke grid by name (getfixturevalue): mark it "
            "pytest.mark.xdist_group('smoke_grid'), or another worker builds the grid again"
        )

    report = run_grid(
        REPO / "parameters" / "smoke.yml",
        results_root=isolated_store / "results",
        scheduler=dask_scheduler,
        progress=False,
    )
    return report, isolated_store / "results" / "smoke"

"""The smoke grid end to end: runner -> records -> summary -> curves notebook -> strict book."""

from __future__ import annotations

import math
import shutil

import pandas as pd
import pytest

from dpmia_utils.paths import parameters_dir
from dpmia_utils.pipeline.grid import run_grid
from dpmia_utils.pipeline.profiles import load_profile
from dpmia_utils.pipeline.store import ProfileStore, validate_executed_notebook
from dpmia_utils.stages import data_fingerprint


def test_every_smoke_run_completes_with_a_valid_record(smoke_grid):
    report, root = smoke_grid
    assert report.ok, report.failed
    store = ProfileStore(root)
    profile = load_profile(parameters_dir() / "smoke.yml")
    assert len(list(store.complete_run_ids())) == len(profile.runs)
    for rid in store.complete_run_ids():
        record = store.load_record(rid)  # validates schema and executed notebooks
        assert record["provenance"]["data_checksum"] == data_fingerprint(profile.blocks["data"])
        target = record["target"]
        assert 0.0 <= target["test_accuracy_mean"] <= 1.0
        assert len(target["fold_test_accuracy"]) == profile.blocks["split"]["folds"]
        assert set(record["attack"]["attacks"]) == {"shadow", "loss", "lira"}
        # Members and non-members of every attack evaluation are balanced.
        for summary in record["attack"]["attacks"]["lira"]["repeats"]:
            assert summary["n_members"] == summary["n_nonmembers"] > 0


def test_dp_runs_report_epsilon_under_all_accountants(smoke_grid):
    _, root = smoke_grid
    summary = pd.read_csv(root / "summary.csv")
    dp = summary[summary["dp"]]
    assert len(dp) == 1
    row = dp.iloc[0]
    assert 0 < row["epsilon_pld"] <= row["epsilon_rdp"] <= row["epsilon_rdp_classic"] < math.inf
    baseline = summary[~summary["dp"]]
    assert (baseline["epsilon_rdp"] == math.inf).all()
    assert (summary["status"] == "complete").all()


def test_profile_stage_notebooks_executed(smoke_grid):
    _, root = smoke_grid
    for stage in ("01_data_prep", "04_curve_fitting"):
        validate_executed_notebook(root / "stages" / f"{stage}.ipynb")


def test_rerun_skips_complete_runs_and_stages(smoke_grid, isolated_store):
    _, root = smoke_grid
    records = {p: p.stat().st_mtime_ns for p in root.rglob("record.json")}
    # Every executed notebook: the runs' stages and the once-per-profile stages.
    notebooks = {p: p.stat().st_mtime_ns for p in root.rglob("*.ipynb")}
    assert {root / "stages" / f"{s}.ipynb" for s in ("01_data_prep", "04_curve_fitting")} <= set(
        notebooks
    )
    report = run_grid(
        parameters_dir() / "smoke.yml", results_root=isolated_store / "results", progress=False
    )
    assert report.ok and report.executed == [] and len(report.skipped) == len(records)
    # Nothing re-executed, not even the stage notebooks: no file was written again.
    assert {p: p.stat().st_mtime_ns for p in root.rglob("record.json")} == records
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.ipynb")} == notebooks


@pytest.fixture(scope="module")
def smoke_book(smoke_grid, isolated_store, tmp_path_factory):
    """The book built strictly (-W -n --keep-going) from the smoke results, in a copy."""
    from dpmia_utils.publish.book import build_book

    root = tmp_path_factory.mktemp("book")
    return build_book("smoke", results_root=isolated_store / "results", strict=True, book_root=root)


def test_book_builds_strictly_from_smoke_results(smoke_book):
    assert smoke_book.index.exists()
    assert (smoke_book.html_dir / "book" / "_generated" / "04_curve_fitting.html").exists()
    # Every results page says which profile produced it.
    assert "smoke" in (smoke_book.html_dir / "book" / "results.html").read_text()
    # The notebooks' default parameters are removed; the values papermill injected stay.
    curves = (smoke_book.html_dir / "book" / "_generated" / "04_curve_fitting.html").read_text()
    assert "papermill injects" not in curves
    assert "results_root" in curves


@pytest.mark.browser
def test_rendered_book_passes_the_browser_check(smoke_book, isolated_store):
    from dpmia_utils.publish.browser_check import check_site, find_chromium

    if find_chromium() is None:
        pytest.skip("Debian's chromium is not installed (make test installs it when run as root)")
    shots = isolated_store / "screenshots"
    pages = [
        "index.html",
        "book/results.html",
        "book/_generated/04_curve_fitting.html",
        "book/_generated/03_membership_inference.html",
    ]
    report = check_site(smoke_book.html_dir, pages, shots)
    assert report.ok, report.summary()
    assert len(list(shots.glob("*.png"))) >= len(pages)


def test_missing_runs_block_the_book_unless_allowed(smoke_grid, isolated_store, tmp_path):
    from dpmia_utils.publish.book import BookError, build_book

    _, root = smoke_grid
    summary = pd.read_csv(root / "summary.csv")
    tampered = isolated_store / "partial-results"
    shutil.copytree(isolated_store / "results", tampered)
    victim = summary["run_id"].iloc[-1]
    shutil.rmtree(tampered / "smoke" / "runs" / victim)
    summary.loc[summary["run_id"] == victim, "status"] = "missing"
    summary.to_csv(tampered / "smoke" / "summary.csv", index=False)
    with pytest.raises(BookError, match="1 run\\(s\\) of profile 'smoke' are missing"):
        build_book("smoke", results_root=tampered, book_root=tmp_path / "book")

"""A long grid published as it goes: each publication keeps what was published before and not
recomputed since, and `run` does not redo published runs unless asked to. A session's results
store is lost when it ends; what it published is not."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from dpmia_utils import paths
from dpmia_utils.cli import main
from dpmia_utils.pipeline.store import ProfileStore
from dpmia_utils.publish.publication import merged_summary, publish_profile, shown_runs

SMOKE = Path(__file__).resolve().parents[2] / "parameters" / "smoke.yml"

pytestmark = pytest.mark.timeout(600)


def _rows(*rows: tuple[str, str, str, float]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["run_id", "label", "status", "target_test_accuracy_mean"])


def test_a_configuration_not_recomputed_keeps_its_published_row():
    source = _rows(("new-a", "a", "complete", 0.7), ("new-b", "b", "missing", None))
    previous = _rows(("old-a", "a", "complete", 0.6), ("old-b", "b", "complete", 0.5))
    merged = merged_summary(source, previous)
    assert list(merged["run_id"]) == ["new-a", "old-b"]  # a recomputed, b kept
    assert list(merged["label"]) == ["a", "b"]
    assert list(merged["status"]) == ["complete", "complete"]
    assert list(merged.columns) == list(source.columns)


def test_nothing_published_before_or_nothing_complete_there_changes_nothing():
    source = _rows(("new-a", "a", "complete", 0.7), ("new-b", "b", "missing", None))
    pd.testing.assert_frame_equal(merged_summary(source, None), source)
    failed = _rows(("old-b", "b", "failed", None), ("old-c", "c", "complete", 0.4))
    # b failed before (no numbers to keep); c is no configuration of the profile any more.
    pd.testing.assert_frame_equal(merged_summary(source, failed), source)


@pytest.fixture
def published_root(tmp_path, monkeypatch):
    root = tmp_path / "published"
    monkeypatch.setattr(paths, "published_dir", lambda: root)
    return root


def test_a_session_that_lost_its_results_publishes_without_losing_the_earlier_runs(
    smoke_grid, published_root, tmp_path
):
    _, results = smoke_grid
    publish_profile("smoke", results.parent)
    first = ProfileStore.for_published("smoke")
    shown = set(shown_runs(first))
    # The next session's store holds every run but one DP run the book does not show: the
    # earlier session computed it, published it, and its results store is gone.
    store = ProfileStore(tmp_path / "results" / "smoke")
    shutil.copytree(results, store.root)
    summary = pd.read_csv(store.summary_path)
    lost = next(
        rid
        for rid, dp in zip(summary["run_id"], summary["dp"], strict=True)
        if dp and rid not in shown
    )
    shutil.rmtree(store.run_dir(lost))
    summary.loc[summary["run_id"] == lost, "status"] = "missing"
    summary.to_csv(store.summary_path, index=False)

    publish_profile("smoke", store.root.parent)
    published = ProfileStore.for_published("smoke")
    merged = pd.read_csv(published.summary_path)
    assert (merged["status"] == "complete").all()
    assert published.load_record(lost)["run_id"] == lost
    assert json.loads((first.run_dir(lost) / "record.json").read_text())["run_id"] == lost
    # The curves were fitted again on the merged summary: the results page counts the kept run.
    curves = nbformat.read(published.stages_dir / "04_curve_fitting.ipynb", as_version=4)
    assert curves.metadata["papermill"]["parameters"]["results_root"] == str(published.root)
    assert not list(published.stages_dir.glob("*.key"))
    assert not [p for p in published_root.iterdir() if p.name.startswith(".")]  # no leftovers


def test_run_leaves_out_the_published_runs_and_recomputes_them_when_asked(
    smoke_grid, published_root, tmp_path, capsys
):
    _, results = smoke_grid
    publish_profile("smoke", results.parent)
    n = len(pd.read_csv(results / "summary.csv"))
    fresh = ["run", str(SMOKE), "--results", str(tmp_path / "fresh"), "--dry-run"]
    # A fresh clone of a published grid: nothing is left to run (the default).
    assert main(fresh) == 0
    out = capsys.readouterr().out
    assert f"{n} runs, 0 to execute ({n} published with the repository, not redone)" in out
    assert out.count("  published ~") == n  # every run's line
    assert f"nothing is left to run: the {n} runs not complete in this store are published" in out
    assert "estimated time" not in out
    assert main([*fresh, "--skip-published"]) == 0  # the old spelling of the default
    assert capsys.readouterr().out == out
    # Run for real, it does nothing, says so and succeeds (no empty summary, no curve fits).
    assert main(fresh[:-1]) == 0
    assert "nothing is left to run: the" in capsys.readouterr().out
    assert not (tmp_path / "fresh" / "smoke" / "summary.csv").exists()
    # --recompute-published plans them all, and says that the publication holds them.
    assert main([*fresh, "--recompute-published"]) == 0
    out = capsys.readouterr().out
    assert f"{n} runs, {n} to execute" in out and "estimated time" in out
    assert f"all {n} runs to execute are published with the repository" in out
    with pytest.raises(SystemExit):  # the two say opposite things
        main([*fresh, "--skip-published", "--recompute-published"])
    capsys.readouterr()
    # A published record that is no longer valid does not count.
    store = ProfileStore.for_published("smoke")
    broken = next(store.complete_run_ids())
    (store.run_dir(broken) / "record.json").write_text("{")
    assert main(fresh) == 0
    assert f"{n} runs, 1 to execute ({n - 1} published" in capsys.readouterr().out
    assert main([*fresh, "--recompute-published"]) == 0
    assert (
        f"{n - 1} of the {n} runs are published with the repository at this code version "
        "(without --recompute-published, 1 to execute)" in (capsys.readouterr().out)
    )


def test_the_book_shows_runs_whose_notebooks_were_published(smoke_grid, published_root):
    # A kept run of an earlier publication may have its record only: the book shows another.
    from dpmia_utils.publish.book import has_run_notebooks, representative_run

    _, results = smoke_grid
    publish_profile("smoke", results.parent)
    store = ProfileStore.for_published("smoke")
    first = representative_run(store)
    assert has_run_notebooks(store, first)
    for notebook in store.run_dir(first).glob("*.ipynb"):
        notebook.unlink()
    shown = shown_runs(store)
    assert shown and first not in shown
    assert all(has_run_notebooks(store, rid) for rid in shown)


def test_refit_executes_the_published_results_notebook_again_without_a_results_store(
    smoke_grid, published_root, capsys
):
    _, results = smoke_grid
    publish_profile("smoke", results.parent)
    published = ProfileStore.for_published("smoke")
    notebook = published.stages_dir / "04_curve_fitting.ipynb"
    stale = nbformat.read(notebook, as_version=4)
    stale.cells = [c for c in stale.cells if c.get("id") != "sceptic-checks"]
    nbformat.write(stale, notebook)  # as if published before that section existed

    assert main(["publish", "smoke", "--refit"]) == 0
    assert f"executed the results notebook again in {published.root}" in capsys.readouterr().out
    curves = nbformat.read(notebook, as_version=4)
    assert curves.metadata["papermill"]["parameters"]["results_root"] == str(published.root)
    (checks,) = [c for c in curves.cells if c.get("id") == "sceptic-checks"]
    shown = "".join(str(o.get("data", {}).get("text/html", "")) for o in checks.outputs)
    # Every published run's record is read, though most have no notebooks beside them.
    summary = pd.read_csv(published.summary_path)
    repeats = 3 * 2 * int((summary["status"] == "complete").sum())  # attacks x smoke repeats
    assert f"of {repeats} attack repeats score exactly 0.5" in shown
    assert "could not be read" not in shown
    assert not list(published.stages_dir.glob("*.key"))


def test_refit_of_a_profile_never_published_says_so(published_root, capsys):
    assert main(["publish", "never-published", "--refit"]) == 1
    assert "publish the profile first" in capsys.readouterr().err

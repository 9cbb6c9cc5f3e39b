"""`spotcheck`: one published run recomputed from scratch must give its record's numbers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from dpmia_utils import paths
from dpmia_utils.cli import main
from dpmia_utils.pipeline.profiles import load_profile
from dpmia_utils.pipeline.store import ProfileStore, RecordError
from dpmia_utils.publish.publication import publish_profile
from dpmia_utils.publish.spotcheck import (
    SpotCheck,
    SpotCheckError,
    cheapest_dp_run,
    compare_records,
    spot_check,
)

SMOKE = Path(__file__).resolve().parents[2] / "parameters" / "smoke.yml"

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def published(smoke_grid, tmp_path, monkeypatch):
    """The smoke grid published into a private folder by `publish` (records, most runs
    without their notebooks)."""
    _, store = smoke_grid
    root = tmp_path / "published"
    monkeypatch.setattr(paths, "published_dir", lambda: root)
    publish_profile("smoke", store.parent)
    return root


def test_the_cheapest_dp_run_recomputes_to_the_bit(published, tmp_path, monkeypatch, capsys):
    store = ProfileStore.for_published("smoke", published)
    rid = cheapest_dp_run(store, load_profile(SMOKE))
    assert store.load_record(rid)["params"]["dp"]
    stamp = tmp_path / "stamps" / "spotcheck-smoke.json"
    command = ["spotcheck", str(SMOKE), "--published", str(published), "--stamp", str(stamp)]
    assert main(command) == 0
    out = capsys.readouterr().out
    assert f"spot check of run {rid}" in out and "all equal to the bit" in out
    assert json.loads(stamp.read_text())["key"]["run_id"] == rid

    # The same check again is not recomputed: the stamp records its pass.
    def no_recompute(*args, **kwargs):
        raise AssertionError("recomputed a check that passed")

    monkeypatch.setattr("dpmia_utils.pipeline.grid.run_grid", no_recompute)
    assert main(command) == 0
    out = capsys.readouterr().out
    assert f"spot check of run {rid} (" in out and f"not recomputed (delete {stamp} to redo)" in out
    # Another record (or code version, or tolerance) is checked again.
    record = store.run_dir(rid) / "record.json"
    record.write_text(record.read_text() + "\n")
    with pytest.raises(AssertionError, match="recomputed a check that passed"):
        main(command)
    with pytest.raises(AssertionError, match="recomputed a check that passed"):
        main([*command, "--tolerance", "0.01"])


def test_published_records_load_without_their_notebooks(published):
    # What the check reads of a published run is its record; most runs ship no notebooks.
    store = ProfileStore.for_published("smoke", published)
    bare = [r for r in store.complete_run_ids() if not list(store.run_dir(r).glob("*.ipynb"))]
    assert bare, "publish kept the notebooks of every run"
    for rid in bare:
        assert store.load_record(rid)["run_id"] == rid
    # A results store (not published) still insists on them.
    with pytest.raises(RecordError, match="missing"):
        ProfileStore.for_profile("smoke", published).load_record(bare[0])


def test_a_difference_beyond_the_tolerance_fails_loudly_and_names_the_number(published):
    store = ProfileStore.for_published("smoke", published)
    original = store.load_record(cheapest_dp_run(store, load_profile(SMOKE)))
    tampered = json.loads(json.dumps(original))
    tampered["target"]["fold_test_accuracy"][0] += 0.05
    tampered["target"]["epsilon"]["rdp"] *= 1.001
    check = SpotCheck("r", "label", 60.0, tolerance=0.02)
    check.compared, check.differences = compare_records(tampered, original, 0.02)
    assert check.compared > 50 and not check.ok
    assert [d[0] for d in check.failures] == [
        "target.epsilon.rdp",
        "target.fold_test_accuracy[0]",
    ]
    assert "target.fold_test_accuracy[0]: published" in check.summary()
    # A looser tolerance forgives the metric, never the epsilon (a function of the parameters).
    _, differences = compare_records(tampered, original, 0.1)
    assert [d[0] for d in differences if not abs(d[1] - d[2]) <= d[3]] == ["target.epsilon.rdp"]


def test_a_record_of_another_code_version_cannot_be_checked(published):
    store = ProfileStore.for_published("smoke", published)
    for rid in store.complete_run_ids():
        path = store.run_dir(rid) / "record.json"
        record = json.loads(path.read_text())
        record["provenance"]["code_version"] = "0" * 16
        path.write_text(json.dumps(record))
    with pytest.raises(SpotCheckError, match="recompute the profile"):
        spot_check(SMOKE, published_root=published, out=lambda line: None)


def test_compare_matches_runs_by_parameters_and_names_the_changed_ones(
    smoke_grid, published, capsys
):
    _, results = smoke_grid
    argv = ["compare", str(SMOKE), "--results", str(results.parent)]
    assert main([*argv, "--published", str(published)]) == 0
    assert "0 beyond it; 0 not recomputed yet" in capsys.readouterr().out
    # A published record whose numbers the recomputation does not give is named, with the
    # number; one whose parameters no recomputed run has is counted as not recomputed.
    store = ProfileStore.for_published("smoke", published)
    changed, missing = sorted(store.complete_run_ids())[:2]
    path = store.run_dir(changed) / "record.json"
    record = json.loads(path.read_text())
    record["target"]["test_accuracy_mean"] += 0.1
    path.write_text(json.dumps(record))
    path = store.run_dir(missing) / "record.json"
    record = json.loads(path.read_text())
    record["params"]["learning_rate"] = 0.5
    path.write_text(json.dumps(record))
    assert main([*argv, "--published", str(published)]) == 1
    err = capsys.readouterr().err
    assert "1 beyond it; 1 not recomputed yet" in err
    assert f"{changed} -> {changed}" in err and "target.test_accuracy_mean" in err


def test_compare_counts_only_recomputations_by_this_code(smoke_grid, published, tmp_path, capsys):
    _, results = smoke_grid
    copy = tmp_path / "results" / results.name
    shutil.copytree(results, copy)
    store = ProfileStore(copy)
    argv = ["compare", str(SMOKE), "--results", str(copy.parent), "--published", str(published)]
    older, unlisted = sorted(store.complete_run_ids())[:2]
    # A complete run the summary does not list yet (a runner stopped mid-grid) is compared.
    summary = pd.read_csv(store.summary_path)
    summary[summary["run_id"] != unlisted].to_csv(store.summary_path, index=False)
    assert main(argv) == 0
    assert "0 beyond it; 0 not recomputed yet" in capsys.readouterr().out
    # A run of an older code version is no recomputation of a published run.
    path = store.run_dir(older) / "record.json"
    record = json.loads(path.read_text())
    record["provenance"]["code_version"] = "0" * 16
    path.write_text(json.dumps(record))
    assert main(argv) == 0
    assert "0 beyond it; 1 not recomputed yet" in capsys.readouterr().out


def test_the_default_run_is_one_of_the_current_code_version(published):
    store = ProfileStore.for_published("smoke", published)
    cheapest = cheapest_dp_run(store, load_profile(SMOKE))
    path = store.run_dir(cheapest) / "record.json"
    record = json.loads(path.read_text())
    record["provenance"]["code_version"] = "0" * 16
    path.write_text(json.dumps(record))
    # The older run cannot be checked, so the check takes the other DP run.
    other = cheapest_dp_run(store, load_profile(SMOKE))
    assert other != cheapest and store.load_record(other)["params"]["dp"]

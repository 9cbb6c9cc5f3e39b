"""The results store publishes runs atomically and never trusts a partial or failed file."""

import json
import os

import nbformat
import pytest

from dpmia_utils.jsonio import JSONFileError, atomic_write_json, read_json
from dpmia_utils.pipeline.store import (
    RECORD_SCHEMA_VERSION,
    ProfileStore,
    RecordError,
    validate_executed_notebook,
    validate_record,
)


def _record(run_id="abc"):
    return {
        "schema_version": RECORD_SCHEMA_VERSION,
        "run_id": run_id,
        "profile": "t",
        "group": "g",
        "params": {},
        "target": {"test_accuracy_mean": 0.7, "train_accuracy_mean": 0.8, "epsilon": {}},
        "attack": {"attacks": {}},
        "provenance": {},
        "notebooks": [],
    }


def test_atomic_write_leaves_no_temp_files_and_refuses_nan(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"x": 1})
    assert read_json(tmp_path / "a.json") == {"x": 1}
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "b.json", {"x": float("nan")})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_truncated_json_is_detected(tmp_path):
    (tmp_path / "r.json").write_text(json.dumps(_record())[:40])
    with pytest.raises(JSONFileError, match="truncated"):
        read_json(tmp_path / "r.json")


@pytest.mark.parametrize("damage", ["truncated", "missing"])
def test_a_run_whose_record_is_truncated_or_missing_is_a_record_error(tmp_path, damage):
    store = ProfileStore(tmp_path)
    folder = store.run_dir("abc")
    folder.mkdir(parents=True)
    if damage == "truncated":
        (folder / "record.json").write_text(json.dumps(_record())[:40])
    with pytest.raises(RecordError, match=damage):
        store.load_record("abc")
    assert not store.is_complete("abc")
    # Callers that catch the JSON readers' error catch the store's too.
    assert issubclass(RecordError, JSONFileError)


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda r: r.pop("target"), "missing field 'target'"),
        (lambda r: r.update(schema_version=99), "schema_version"),
        (lambda r: r.update(params=[]), "'params' should be dict"),
        (lambda r: r["target"].pop("epsilon"), "target has no 'epsilon'"),
        (lambda r: r.update(attack={}), "no 'attacks'"),
    ],
)
def test_records_failing_the_schema_are_refused(mutate, message):
    record = _record()
    mutate(record)
    with pytest.raises(RecordError, match=message):
        validate_record(record)


def _notebook(path, **papermill):
    nb = nbformat.v4.new_notebook()
    nb.metadata["papermill"] = papermill
    nbformat.write(nb, path)


def test_executed_notebook_checks(tmp_path):
    good = tmp_path / "good.ipynb"
    _notebook(good, exception=None, end_time="2026-01-01T00:00:00")
    validate_executed_notebook(good)
    failed = tmp_path / "failed.ipynb"
    _notebook(failed, exception=True, end_time="2026-01-01T00:00:00")
    with pytest.raises(RecordError, match="exception"):
        validate_executed_notebook(failed)
    unfinished = tmp_path / "unfinished.ipynb"
    _notebook(unfinished, exception=None, end_time=None)
    with pytest.raises(RecordError, match="no end time"):
        validate_executed_notebook(unfinished)
    truncated = tmp_path / "truncated.ipynb"
    truncated.write_text(good.read_text()[:50])
    with pytest.raises(RecordError, match="unreadable"):
        validate_executed_notebook(truncated)


def test_publish_is_a_rename_and_partials_are_invisible(tmp_path):
    store = ProfileStore(tmp_path)
    partial = store.new_partial_dir("abc")
    assert list(store.complete_run_ids()) == []
    atomic_write_json(partial / "record.json", _record())
    store.publish(partial, "abc")
    assert list(store.complete_run_ids()) == ["abc"]
    assert store.load_record("abc")["run_id"] == "abc"
    assert not partial.exists()


def test_stale_partials_of_dead_owners_are_removed_live_ones_kept(tmp_path):
    store = ProfileStore(tmp_path)
    mine = store.new_partial_dir("live")
    dead = store.runs_dir / mine.name.replace(f"-{os.getpid()}-", "-999999999-").replace(
        "live", "dead"
    )
    dead.mkdir()
    removed = store.clean_stale_partials()
    assert removed == [dead] and mine.exists() and not dead.exists()

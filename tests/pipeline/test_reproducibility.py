"""Reproducibility: a run's configuration and seed fix its weights and metrics exactly.

The smoke grid's DP run was executed by the runner (a Dask worker's papermill kernel); here
the target-training notebook runs again in fresh kernels, once with the same parameters and
once with another seed, once reading the saved prefixes of a longer run (training.checkpoints),
and the records are checked for what produced them.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

import nbformat
import numpy as np
import papermill
import pytest

from dpmia_utils import paths
from dpmia_utils.jsonio import read_json
from dpmia_utils.pipeline.codeversion import RUN_STAGES
from dpmia_utils.pipeline.execute import (
    CHECKPOINT_DIR_ENV_VAR,
    CHECKPOINT_EPOCHS_ENV_VAR,
    temporary_environment,
)
from dpmia_utils.pipeline.profiles import load_profile
from dpmia_utils.pipeline.store import ProfileStore
from dpmia_utils.stages import data_fingerprint

pytestmark = pytest.mark.timeout(900)  # a hung kernel fails the test, not the whole suite

#: Everything in target.json that is a result (not a timing) of the training.
RESULT_FIELDS = (
    "train_accuracy_mean",
    "train_accuracy_std",
    "test_accuracy_mean",
    "test_accuracy_std",
    "fold_train_accuracy",
    "fold_test_accuracy",
    "nonzero_fraction_mean",
    "nonzero_fraction_std",
    "noise_multiplier",
    "epsilon",
    "delta",
    "steps",
    "n_train",
    "splits",
)


@pytest.fixture(scope="module")
def smoke(smoke_grid):
    """The smoke profile, its store and the record of its DP run."""
    report, root = smoke_grid
    store = ProfileStore(root)
    profile = load_profile(paths.parameters_dir() / "smoke.yml")
    records = [store.load_record(p.run_id) for p in report.planned]
    (dp_record,) = [r for r in records if r["group"] == "dp"]
    return profile, store, records, dp_record


def execute_training(profile, params: dict, run_dir: Path) -> Path:
    """Notebook 02 with a run's parameters, in a fresh kernel, writing into `run_dir`."""
    run_dir.mkdir(parents=True)
    papermill.execute_notebook(
        str(paths.notebooks_dir() / "02_target_training.ipynb"),
        str(run_dir / "02_target_training.ipynb"),
        parameters={**profile.shared_parameters(), "run": params, "run_dir": str(run_dir)},
        progress_bar=False,
        cwd=str(run_dir),
    )
    return run_dir


@pytest.fixture(scope="module")
def fresh_runs(smoke, tmp_path_factory):
    """The DP run executed again with its own seed and with another, two kernels at once."""
    profile, _, _, record = smoke
    root = tmp_path_factory.mktemp("fresh")
    other_seed = {**record["params"], "seed": record["params"]["seed"] + 1}
    jobs = {"same": record["params"], "other": other_seed}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {k: pool.submit(execute_training, profile, p, root / k) for k, p in jobs.items()}
        return {k: f.result() for k, f in futures.items()}


def fold_weights(run_dir: Path) -> list[list[np.ndarray]]:
    """Every fold model's weight arrays, in fold order."""
    folds = []
    for path in sorted((run_dir / "models").glob("fold*.npz")):
        with np.load(path) as weights:
            folds.append([weights[f"w{i}"] for i in range(len(weights.files))])
    return folds


def test_same_seed_gives_identical_weights_and_metrics_in_a_fresh_process(smoke, fresh_runs):
    _, store, _, record = smoke
    original = fold_weights(store.run_dir(record["run_id"]))
    again = fold_weights(fresh_runs["same"])
    assert len(original) == len(again) == 2
    for fold_a, fold_b in zip(original, again, strict=True):
        for a, b in zip(fold_a, fold_b, strict=True):
            assert a.dtype == b.dtype and a.shape == b.shape
            assert a.tobytes() == b.tobytes()  # bit for bit, not approximately
    target = read_json(fresh_runs["same"] / "target.json")
    for field in RESULT_FIELDS:
        assert target[field] == record["target"][field], field


@pytest.fixture(scope="module")
def resumed_run(smoke, tmp_path_factory):
    """The DP run executed again in a fresh kernel that may read the grid's saved prefixes:
    the smoke grid's dp-longer run (the same training for 10 epochs) saved epoch 5."""
    profile, store, _, record = smoke
    folder = store.checkpoints_dir / record["provenance"]["code_version"]
    assert any(folder.glob("*/epoch-5.npz")), "the grid saved no 5-epoch prefix"
    values = {CHECKPOINT_DIR_ENV_VAR: str(folder), CHECKPOINT_EPOCHS_ENV_VAR: ""}
    with temporary_environment(values):  # the kernel inherits the environment at its start
        return execute_training(
            profile, record["params"], tmp_path_factory.mktemp("resumed") / "run"
        )


def test_a_run_read_off_a_longer_runs_prefix_is_bit_identical(smoke, fresh_runs, resumed_run):
    _, store, _, record = smoke
    target = read_json(resumed_run / "target.json")
    assert target["resumed_epochs"] == [5, 5]  # nothing trained: both folds read off dp-longer
    assert read_json(fresh_runs["same"] / "target.json")["resumed_epochs"] == [0, 0]
    for source in (store.run_dir(record["run_id"]), fresh_runs["same"]):
        for fold_a, fold_b in zip(fold_weights(source), fold_weights(resumed_run), strict=True):
            for a, b in zip(fold_a, fold_b, strict=True):
                assert a.tobytes() == b.tobytes()
    for field in RESULT_FIELDS:
        assert target[field] == record["target"][field], field


def test_another_seed_gives_other_noise_under_the_same_privacy_budget(smoke, fresh_runs):
    _, _, _, record = smoke
    same, other = fold_weights(fresh_runs["same"]), fold_weights(fresh_runs["other"])
    for fold_a, fold_b in zip(same, other, strict=True):
        kernel_a, kernel_b = fold_a[0], fold_b[0]
        # Not a few coincidences: nearly every weight differs.
        assert np.mean(kernel_a != kernel_b) > 0.9
    target = read_json(fresh_runs["other"] / "target.json")
    # The accountant sees the same noise, steps and data size whatever the seed.
    assert target["epsilon"] == record["target"]["epsilon"]
    assert target["noise_multiplier"] == record["target"]["noise_multiplier"] > 0


def test_records_and_notebooks_say_what_produced_them(smoke):
    profile, store, records, _ = smoke
    checksum = data_fingerprint(profile.blocks["data"])
    for record in records:
        provenance = record["provenance"]
        for package in (
            "tensorflow",
            "tensorflow-privacy",
            "dp-accounting",
            "numpy",
            "scikit-learn",
        ):
            assert provenance["packages"][package] == metadata.version(package)
        assert provenance["data_checksum"] == checksum
        assert provenance["seeds"] == {
            "run": record["params"]["seed"],
            "split": profile.blocks["split"]["seed"],
            "data": profile.blocks["data"]["seed"],
        }
        assert provenance["tf_threads"] is not None and provenance["code_version"]
        for stage, _ in RUN_STAGES:
            nb = nbformat.read(store.run_dir(record["run_id"]) / f"{stage}.ipynb", as_version=4)
            stamp = nb.metadata["dpmia"]
            assert stamp["packages"] == provenance["packages"]
            assert stamp["seeds"] == provenance["seeds"]
            assert stamp["data_checksum"] == checksum and stamp["run_id"] == record["run_id"]
    data_prep = nbformat.read(store.stages_dir / "01_data_prep.ipynb", as_version=4)
    assert data_prep.metadata["dpmia"]["data_checksum"] == checksum

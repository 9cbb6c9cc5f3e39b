"""Dry-run time estimates: count the models a run trains and scale measured per-epoch costs."""

import os

import pytest

from dpmia_utils.constants import PAPER_TRAINING_ROWS
from dpmia_utils.paths import parameters_dir
from dpmia_utils.pipeline.estimate import (
    DEFAULT_EVAL_SECONDS_PER_EPOCH,
    DEFAULT_SECONDS_PER_EPOCH,
    OVERHEAD_SECONDS,
    REFERENCE_CNN,
    attack_model_epochs,
    estimate_run_seconds,
    kernel_factor,
    measured_costs,
    run_threads,
    shared_prefix_epochs,
    target_model_epochs,
    timed_alone,
    wall_seconds,
)
from dpmia_utils.pipeline.profiles import load_profile


def test_attack_stage_counts_one_shadow_model_per_repeat_and_the_lira_references():
    blocks = load_profile(parameters_dir() / "smoke.yml").blocks
    run = {"epochs": 50}
    k = blocks["attack"]["reference_models"]
    repeats = blocks["attack"]["repeats"]
    assert attack_model_epochs(run, blocks) == (repeats + k) * 50
    # These profiles' LiRA reuses the shadow models: no reference model of its own.
    for name in ("paper", "table1", "table1-described", "quick"):
        paper = load_profile(parameters_dir() / f"{name}.yml").blocks
        assert paper["attack"]["reference_models"] == "shadow"
        repeats = paper["attack"]["repeats"]
        assert attack_model_epochs(run, paper) == repeats * 50
    blocks = paper
    no_lira = {**blocks, "attack": {**blocks["attack"], "attacks": ["shadow", "loss"]}}
    assert attack_model_epochs(run, no_lira) == repeats * 50


def test_a_search_trains_every_non_epoch_combination_once_per_fold_at_its_longest_epochs():
    run = {"epochs": 100, "dp": False, "target_epsilon": None}
    search = {"learning_rate": [0.01, 0.001], "epochs": [50, 100], "batch_size": [8, 16]}
    assert target_model_epochs({**run, "search": search}, folds=5) == 5 * 4 * 100
    assert target_model_epochs(run, folds=5) == 5 * 100
    # With a target epsilon the noise depends on the epochs: each epoch count is its own training.
    dp = {**run, "dp": True, "target_epsilon": 1.0, "search": search}
    assert target_model_epochs(dp, folds=5) == 5 * 8 * 75


def test_estimate_is_linear_in_epochs_and_uses_the_given_costs():
    profile = load_profile(parameters_dir() / "paper.yml")
    run = next(r.params for r in profile.runs if r.params["model"] == "lasso" and r.params["dp"])
    # One training setting (the paper's DP Lasso points select theirs among 16 by CV).
    run = {**run, "search": None}
    short = estimate_run_seconds({**run, "epochs": 50}, profile.blocks) - OVERHEAD_SECONDS
    long = estimate_run_seconds({**run, "epochs": 100}, profile.blocks) - OVERHEAD_SECONDS
    assert long == pytest.approx(2 * short)
    doubled = {k: 2 * v for k, v in DEFAULT_SECONDS_PER_EPOCH.items()}
    doubled_eval = {k: 2 * v for k, v in DEFAULT_EVAL_SECONDS_PER_EPOCH.items()}
    assert estimate_run_seconds(
        {**run, "epochs": 50}, profile.blocks, doubled, eval_costs=doubled_eval
    ) - OVERHEAD_SECONDS == pytest.approx(2 * short)
    # As coded: 5-fold training sets of 1,504 (the paper's n) x 28,220 variants, each epoch
    # also scoring the held-out fold (376.2 rows); the attack's models train on half of the
    # shadow half (1,881 / 2 rows) and score nothing while they train.
    per_epoch = DEFAULT_SECONDS_PER_EPOCH[("lasso", True)]
    scoring = DEFAULT_EVAL_SECONDS_PER_EPOCH["lasso"]
    expected = 5 * 50 * (per_epoch * 1504.8 / PAPER_TRAINING_ROWS + scoring * 376.2 / 377)
    expected += 5 * 50 * per_epoch * 940.5 / PAPER_TRAINING_ROWS  # shadow models, also LiRA's
    assert short == pytest.approx(expected)


def test_costs_are_for_the_as_coded_cnn_and_scale_with_its_kernels():
    profile = load_profile(parameters_dir() / "paper.yml")
    run = next(r.params for r in profile.runs if r.params["model"] == "cnn" and r.params["dp"])
    assert (run["n_kernels"], run["kernel_size"]) == REFERENCE_CNN
    assert kernel_factor(run) == 1.0 and kernel_factor({"model": "lasso"}) == 1.0
    wide = {**run, "n_kernels": 16, "kernel_size": 9}
    assert 1.5 < kernel_factor(wide) < 1.7  # 16 x 9 measured at 1.4-1.8 times 8 x 5
    assert estimate_run_seconds(wide, profile.blocks) - OVERHEAD_SECONDS == pytest.approx(
        kernel_factor(wide) * (estimate_run_seconds(run, profile.blocks) - OVERHEAD_SECONDS)
    )


class FakeStore:
    """What measured_costs reads of a ProfileStore: complete runs and their records."""

    def __init__(self, records: dict) -> None:
        self.records = records

    def complete_run_ids(self):
        return iter(self.records)

    def load_record(self, rid: str) -> dict:
        return self.records[rid]


def test_a_stores_measurements_replace_the_defaults_at_the_reference_size():
    record = {
        "params": {"model": "cnn", "dp": True, "n_kernels": 16, "kernel_size": 9},
        "target": {
            "seconds_per_epoch": 2.0,  # a 16 x 9 CNN on half the reference cells
            "train_cells": PAPER_TRAINING_ROWS * 28220 // 2,
            "resumed_epochs": [0, 0],
            "folds": 2,
            "params_trained": {"config": {"epochs": 10}},
            "seconds": 2 * 10 * 2.5,  # 0.5 s per epoch beyond training: scoring
            "dataset": {"n_samples": 2 * (PAPER_TRAINING_ROWS // 2 + 377 // 2)},
            "n_train": PAPER_TRAINING_ROWS // 2,
            "n_variants": 28220,
        },
        # Timed alone: 1.8 of 2 threads' cores on average.
        "provenance": {"seconds": 100.0, "kernel_cpu_seconds": 180.0, "tf_threads": "2"},
    }
    store = FakeStore({"r1": record})
    train, scoring = measured_costs(store)
    factor = kernel_factor(record["params"])
    assert train[("cnn", True)] == pytest.approx(2.0 * 2 / factor, rel=1e-3)
    assert scoring["cnn"] == pytest.approx(0.5 * 2 / factor, rel=0.01)
    # Only the given code version's runs count: another version's costs may differ.
    record["provenance"]["code_version"] = "aaaa"
    assert measured_costs(store, "aaaa")[0] == train
    assert measured_costs(store, "bbbb") == ({}, {})
    # A run timed beside another (1.0 of its 2 threads' cores) or before the runner kept its
    # CPU time would make every estimate pessimistic: not used.
    record["provenance"]["kernel_cpu_seconds"] = 100.0
    assert measured_costs(store) == ({}, {})
    del record["provenance"]["kernel_cpu_seconds"]
    assert measured_costs(store) == ({}, {})
    record["provenance"]["kernel_cpu_seconds"] = 180.0
    # A run that read epochs off a sibling measured less than its trainings cost: not used.
    record["target"]["resumed_epochs"] = [5, 5]
    assert measured_costs(store) == ({}, {})


def test_runs_differing_only_in_epochs_are_charged_their_longest_trajectory_once():
    base = {"model": "cnn", "dp": True, "noise_multiplier": 1.0, "target_epsilon": None}
    runs = [{**base, "epochs": 100}, {**base, "epochs": 50}, {**base, "epochs": 50, "l1": 1}]
    assert shared_prefix_epochs(runs) == [50, 0, 0]
    # Not when the epochs are searched, nor when the noise is calibrated to them.
    calibrated = {**base, "target_epsilon": 1.0}
    assert shared_prefix_epochs([{**calibrated, "epochs": 100}, {**calibrated, "epochs": 50}]) == [
        0,
        0,
    ]
    # A search over other settings trains every candidate at the run's epochs: shared.
    other = {**base, "search": {"l2_clip": [0.6, 1.0]}}
    assert shared_prefix_epochs([{**other, "epochs": 100}, {**other, "epochs": 50}]) == [50, 0]
    searched = {**base, "search": {"epochs": [50, 100]}}
    assert shared_prefix_epochs([{**searched, "epochs": 100}, {**searched, "epochs": 50}]) == [0, 0]
    profile = load_profile(parameters_dir() / "paper.yml")
    run = next(r.params for r in profile.runs if r.params["model"] == "lasso" and r.params["dp"])
    alone = estimate_run_seconds({**run, "epochs": 50}, profile.blocks) - OVERHEAD_SECONDS
    long = {**run, "epochs": 100}
    resumed = estimate_run_seconds(long, profile.blocks, shared_epochs=50) - OVERHEAD_SECONDS
    assert resumed == pytest.approx(alone)
    # The paper grid: every DP setting at 50 epochs is a prefix of the same setting at 100.
    shared = shared_prefix_epochs([r.params for r in profile.runs])
    assert sum(s == 50 for s in shared) == 40 and sum(shared) == 40 * 50


def test_a_complete_sibling_leaves_only_what_it_did_not_train():
    base = {"model": "cnn", "dp": True, "noise_multiplier": 1.0, "target_epsilon": None}
    runs = [{**base, "epochs": 100}, {**base, "epochs": 50}, {**base, "epochs": 100, "l1": 1}]
    # The 100-epoch run is done: its 50-epoch sibling reads everything off its trajectory.
    assert shared_prefix_epochs(runs, [True, False, False]) == [50, 50, 0]
    # The 50-epoch run is done: the 100-epoch one trains its last 50 epochs.
    assert shared_prefix_epochs(runs, [False, True, False]) == [50, 0, 0]
    assert shared_prefix_epochs(runs, [False] * 3) == shared_prefix_epochs(runs)
    # Calibrated noise shares nothing, done or not.
    calibrated = [{**r, "target_epsilon": 1.0} for r in runs[:2]]
    assert shared_prefix_epochs(calibrated, [True, False]) == [0, 0]


def test_wall_time_shares_the_cores_among_the_threads_of_the_runs_in_progress():
    lasso, cnn = 1, 2  # threads on a 2-core machine (estimate.run_threads)
    assert run_threads({"model": "lasso"}, cores=2) == lasso
    assert run_threads({"model": "cnn"}, cores=2) == cnn
    # One worker: one run after the other, whatever their threads.
    assert wall_seconds([(10.0, cnn), (4.0, lasso)], n_workers=1, cores=2) == pytest.approx(14)
    # Two single-threaded runs overlap fully; two CNN runs gain nothing from a second worker.
    assert wall_seconds([(10.0, lasso), (4.0, lasso)], n_workers=2, cores=2) == pytest.approx(10)
    assert wall_seconds([(10.0, cnn), (4.0, cnn)], n_workers=2, cores=2) == pytest.approx(14)
    # A CNN beside a Lasso: 3 threads on 2 cores, both at 2/3 of their speed alone until the
    # Lasso ends (at 6 s, 4 s of its work done), then the CNN alone (its last 6 s).
    assert wall_seconds([(10.0, cnn), (4.0, lasso)], n_workers=2, cores=2) == pytest.approx(12)
    # Runs start in the given order as workers free up.
    runs = [(6.0, lasso), (3.0, lasso), (3.0, lasso)]
    assert wall_seconds(runs, n_workers=2, cores=2) == pytest.approx(6)
    assert wall_seconds([], n_workers=2, cores=2) == 0.0


def test_a_run_is_timed_alone_when_its_kernels_got_the_cores_their_threads_could_use():
    cores = os.cpu_count() or 1
    lasso = {"seconds": 100.0, "tf_threads": "1"}
    assert timed_alone({**lasso, "kernel_cpu_seconds": 95.0})
    assert not timed_alone({**lasso, "kernel_cpu_seconds": 60.0})  # beside a CNN: 2/3
    cnn = {"seconds": 100.0, "tf_threads": str(cores)}
    assert timed_alone({**cnn, "kernel_cpu_seconds": 90.0 * cores})
    assert not timed_alone({**cnn, "kernel_cpu_seconds": 100.0 * cores / 2 if cores > 1 else 50})
    assert not timed_alone({**cnn, "kernel_cpu_seconds": None})
    assert not timed_alone({})

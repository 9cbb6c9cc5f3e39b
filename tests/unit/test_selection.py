"""Hyperparameter selection by CV: shared trajectories are exact, the best candidate wins."""

from __future__ import annotations

import numpy as np
import pytest

from dpmia_utils.splits import kfold_splits
from dpmia_utils.stages.params import resolve_parameters
from dpmia_utils.stages.target import plan_training
from dpmia_utils.training import candidates, cross_validate, select_configuration


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(3)
    X = np.where(rng.random((160, 40)) < 0.5, -1.0, 1.0).astype(np.float32)
    y = (X[:, :3].sum(axis=1) + rng.normal(0, 1, 160) > 0).astype(np.int64)
    folds = kfold_splits(np.arange(160), k=3, seed=0, labels=y)
    return X, y, folds


def _params(**run):
    return resolve_parameters(run={"model": "lasso", "batch_size": 16, **run})[1]


def test_candidates_cross_the_searched_values_in_grid_order():
    # In the order of the search's keys (resolve_parameters' YAML round trip sorts them).
    params = _params(search={"learning_rate": [0.1, 0.01], "epochs": [2, 4]})
    got = [(c["epochs"], c["learning_rate"]) for c in candidates(params, params["search"])]
    assert got == [(2, 0.1), (2, 0.01), (4, 0.1), (4, 0.01)]
    with pytest.raises(ValueError, match="cannot search"):
        candidates(params, {"l1": [0.0]})


def test_scores_at_an_earlier_epoch_equal_a_shorter_training(problem):
    # The epochs candidates share one training: its score at epoch 2 must be exactly that of a
    # separate 2-epoch training (batches, noise and dropout of an epoch depend only on the seed
    # and the epoch), DP included.
    X, y, folds = problem
    params = _params(
        dp=True, noise_multiplier=1.0, search={"learning_rate": [0.05], "epochs": [2, 4]}
    )
    selection = select_configuration(
        X, y, folds, params, lambda p: plan_training(p, n_train=100), progress=False
    )
    assert selection.trainings == len(folds) * (1 + (selection.params["epochs"] == 2))
    for epochs in (2, 4):
        alone_params = {**params, "search": None, "learning_rate": 0.05, "epochs": epochs}
        plan = plan_training(alone_params, n_train=100)
        alone = cross_validate(X, y, plan.spec, plan.config, folds, progress=False)
        row = selection.table[selection.table["epochs"] == epochs].iloc[0]
        assert row["fold_test_accuracy"] == alone.test_accuracy
    winner = selection.table.sort_values("rank").iloc[0]
    assert selection.params["epochs"] == winner["epochs"]
    assert selection.cv.test_accuracy == list(winner["fold_test_accuracy"])


def test_the_highest_mean_accuracy_wins_and_ties_go_to_the_first(problem):
    X, y, folds = problem
    params = _params(search={"learning_rate": [1e-6, 0.05, 0.05000001], "epochs": [3]})
    selection = select_configuration(
        X, y, folds, params, lambda p: plan_training(p, n_train=100), progress=False
    )
    table = selection.table
    assert (
        table["mean_test_accuracy"].max()
        == table.loc[table["rank"] == 1, "mean_test_accuracy"].iloc[0]
    )
    best = table["mean_test_accuracy"].max()
    first_best = table.index[table["mean_test_accuracy"] == best][0]
    assert selection.params["learning_rate"] == table.loc[first_best, "learning_rate"]
    # A learning rate of 1e-6 barely moves the initial weights: it must not win.
    assert selection.params["learning_rate"] != 1e-6

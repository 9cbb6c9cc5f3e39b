"""The converged L1 reference solves the same objective as our Lasso (KKT conditions)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from dpmia_utils.training import converged_l1_reference, fit_l1_logistic


def _sparse_problem(n: int = 300, p: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = np.where(rng.random((n, p)) < 0.5, -1.0, 1.0)
    w = np.zeros(p)
    w[:5] = 1.0
    y = (rng.random(n) < expit(X @ w)).astype(int)
    return X, y


@pytest.mark.parametrize("l1", [0.01, 0.03])
def test_solution_meets_the_kkt_conditions_of_mean_bce_plus_l1(l1):
    # Optimality of mean BCE + l1 * ||w||_1: the mean-loss gradient is -l1 * sign(w_j) where
    # w_j != 0 and at most l1 in size where w_j == 0. A different penalty scale (e.g. sklearn's
    # C read as 1/l1) would violate both by a factor of n.
    X, y = _sparse_problem()
    model = fit_l1_logistic(X, y, l1, tol=1e-8)
    w, b = model.coef_[0], model.intercept_[0]
    gradient = X.T @ (expit(X @ w + b) - y) / len(y)
    active = w != 0
    assert 0 < active.sum() < w.size
    np.testing.assert_allclose(gradient[active], -l1 * np.sign(w[active]), atol=1e-3 * l1 + 1e-6)
    assert np.all(np.abs(gradient[~active]) <= l1 * (1 + 1e-3))


def test_reference_is_sparse_and_finds_the_causal_variants():
    X, y = _sparse_problem(n=600)
    folds = [(np.arange(0, 400), np.arange(400, 600)), (np.arange(200, 600), np.arange(0, 200))]
    summary = converged_l1_reference(X, y, folds, l1=0.05)
    assert summary["nonzero_fraction_mean"] < 0.2
    assert summary["test_accuracy_mean"] > 0.7  # 5 strong causal variants out of 200
    model = fit_l1_logistic(X, y, 0.05)
    assert set(np.argsort(-np.abs(model.coef_[0]))[:5]) == set(range(5))

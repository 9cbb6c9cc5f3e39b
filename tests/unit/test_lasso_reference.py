"""The converged L1 reference solves the same objective as our Lasso (KKT conditions)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

from dpmia_utils.lasso_reference import (
    INTERCEPT_SCALING,
    column_modes,
    shifted_sparse,
)
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
    solution = fit_l1_logistic(X, y, l1, tol=1e-8)
    w, b = solution.coef, solution.intercept
    gradient = X.T @ (expit(X @ w + b) - y) / len(y)
    active = w != 0
    assert 0 < active.sum() < w.size
    # The intercept's own penalty (liblinear cannot switch it off) pulls every weight's
    # gradient by up to l1 / INTERCEPT_SCALING once the columns are shifted by their modes.
    slack = l1 * (1 / INTERCEPT_SCALING + 1e-3)
    np.testing.assert_allclose(gradient[active], -l1 * np.sign(w[active]), atol=slack + 1e-6)
    assert np.all(np.abs(gradient[~active]) <= l1 + slack)


def test_reference_is_sparse_and_finds_the_causal_variants():
    X, y = _sparse_problem(n=600)
    folds = [(np.arange(0, 400), np.arange(400, 600)), (np.arange(200, 600), np.arange(0, 200))]
    summary = converged_l1_reference(X, y, folds, l1=0.05)
    assert summary["nonzero_fraction_mean"] < 0.2
    assert summary["test_accuracy_mean"] > 0.7  # 5 strong causal variants out of 200
    solution = fit_l1_logistic(X, y, 0.05)
    assert set(np.argsort(-np.abs(solution.coef))[:5]) == set(range(5))


def test_shifting_by_the_column_modes_keeps_the_solution_and_halves_the_stored_values():
    # Genotype-like +-1 columns with unequal allele frequencies: liblinear stores only the
    # values that differ from each column's mode, and the fit is the same one (the shift
    # moves only the intercept) as liblinear's on the unshifted dense matrix.
    rng = np.random.default_rng(1)
    frequency = rng.uniform(0.1, 0.9, size=150)
    X = np.where(rng.random((400, 150)) < frequency, 1, -1).astype(np.int8)
    y = (rng.random(400) < expit(X[:, :4] @ np.ones(4) * 0.8)).astype(int)
    shifted = shifted_sparse(X, column_modes(X))
    mode = np.where((X == 1).sum(axis=0) > (X == -1).sum(axis=0), 1, -1)
    assert shifted.nnz == np.sum(X != mode) <= X.size / 2
    np.testing.assert_array_equal(shifted.toarray(), X - mode)
    solution = fit_l1_logistic(X, y, 0.02, tol=1e-8)
    plain = LogisticRegression(
        penalty="l1", C=1 / (len(y) * 0.02), solver="liblinear", intercept_scaling=1e4, tol=1e-10
    ).fit(X.astype(float), y)
    np.testing.assert_allclose(solution.coef, plain.coef_[0], atol=2e-3)
    assert solution.intercept == pytest.approx(plain.intercept_[0], abs=2e-2)
    np.testing.assert_allclose(
        solution.decision_function(X), plain.decision_function(X.astype(float)), atol=5e-2
    )
    assert solution.accuracy(X, y) == pytest.approx(plain.score(X.astype(float), y), abs=0.01)


def test_reference_reads_int8_rows_without_changing_the_answer():
    X, y = _sparse_problem(n=300)
    folds = [(np.arange(0, 200), np.arange(200, 300))]
    as_float = converged_l1_reference(X, y, folds, l1=0.03)
    as_int8 = converged_l1_reference(X.astype(np.int8), y, folds, l1=0.03)
    for key in ("train_accuracy_mean", "test_accuracy_mean", "nonzero_fraction_mean"):
        assert as_int8[key] == as_float[key]


def test_the_reference_and_the_stages_import_no_tensorflow():
    # Notebook 02 fits the reference before training, so that liblinear's copies do not add
    # to TensorFlow's memory (Binder's 2 GB): that holds only while neither imports it.
    code = (
        "import sys, dpmia_utils.lasso_reference, dpmia_utils.stages;"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)

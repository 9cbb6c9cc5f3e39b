"""A converged L1-penalised logistic regression: what a truly sparse Lasso does on the data.

DP-SGD with a proximal L1 step at the paper's lambda stops far from the L1 optimum: its
threshold per step, ``learning_rate * lambda``, is much smaller than the per-step moves, so
almost every weight stays non-zero. As a reference the book shows the exact minimiser of the
same objective, ``mean binary cross-entropy + lambda * ||w||_1``, from scikit-learn's
liblinear solver (``C = 1 / (n * lambda)``; the intercept is scaled by 100 so its penalty,
which liblinear cannot switch off, is negligible).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

#: liblinear's intercept column value: its weight's penalty is lambda * |b| / this.
INTERCEPT_SCALING = 100.0


def fit_l1_logistic(
    X: np.ndarray, y: np.ndarray, l1: float, tol: float = 1e-4
) -> LogisticRegression:
    """The minimiser of mean BCE + ``l1`` * ||w||_1 on (X, y) (liblinear, converged to ``tol``)."""
    if l1 <= 0:
        raise ValueError(f"l1 must be positive for a sparse reference, got {l1}")
    model = LogisticRegression(
        penalty="l1",
        C=1.0 / (len(y) * l1),
        solver="liblinear",
        intercept_scaling=INTERCEPT_SCALING,
        tol=tol,
        max_iter=10_000,
        # liblinear shuffles coordinates in its dual solver: seeded, the row is reproducible.
        random_state=0,
    )
    return model.fit(X, y)


def converged_l1_reference(
    X: np.ndarray, y: np.ndarray, folds: Sequence[tuple[np.ndarray, np.ndarray]], l1: float
) -> dict[str, Any]:
    """Per-fold accuracy and non-zero weight fraction of the converged L1 solution."""
    started = time.perf_counter()
    rows = []
    for train, test in folds:
        # float32 rows whatever X's dtype (the stages pass int8): liblinear sees the same input.
        X_train, X_test = np.asarray(X[train], np.float32), np.asarray(X[test], np.float32)
        model = fit_l1_logistic(X_train, y[train], l1)
        rows.append(
            {
                "train_accuracy": float(model.score(X_train, y[train])),
                "test_accuracy": float(model.score(X_test, y[test])),
                "nonzero_fraction": float(np.mean(model.coef_ != 0)),
            }
        )
    summary: dict[str, Any] = {"l1": float(l1), "solver": "liblinear", "folds": rows}
    for key in ("train_accuracy", "test_accuracy", "nonzero_fraction"):
        values = [row[key] for row in rows]
        summary[f"{key}_mean"] = float(np.mean(values))
        summary[f"{key}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    summary["seconds"] = time.perf_counter() - started
    return summary

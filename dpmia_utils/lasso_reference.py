"""A converged L1-penalised logistic regression: what a truly sparse Lasso does on the data.

DP-SGD with a proximal L1 step at the paper's lambda stops far from the L1 optimum: its
threshold per step, ``learning_rate * lambda``, is much smaller than the per-step moves, so
almost every weight stays non-zero. As a reference the book shows the exact minimiser of the
same objective, ``mean binary cross-entropy + lambda * ||w||_1``, from scikit-learn's
liblinear solver (``C = 1 / (n * lambda)``; the intercept column is 1000, so that its
penalty, which liblinear cannot switch off, is ``lambda * |b| / 1000``).

Memory. liblinear stores every non-zero input value as a 16-byte node, twice for the L1
solver (rows, then columns): on the +-1 genotypes of 1,504 rows x 28,220 variants that was
1.4 GB, beside a float64 copy of X, and a run's kernel peaked at 2.7 GB, more than a Binder
session has. Each variant is therefore shifted by its most frequent value before the fit,
``z = x - mode``: that only moves the intercept (``b_z = b + w . mode``), not the weights or
their penalty, and leaves at most half the values non-zero, passed as a sparse matrix built
in row chunks. Scores are computed in row chunks too, from X's own dtype. On that fold the
fit's peak fell from 1.6 GB to 0.95 GB above the data. The shift makes the intercept's
small penalty pull on every weight's gradient by up to ``lambda / 1000``; with a column of
100 that was 1% of lambda and the fit stopped at a visibly worse objective (0.21291 against
0.21201 at 1000 and 0.21192 at 10,000, which took 8x longer).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression

#: liblinear's intercept column value: its weight's penalty is lambda * |b| / this.
INTERCEPT_SCALING = 1000.0

#: Rows converted to float64 at a time (shifting, scoring): about 28 MB on the real data.
_CHUNK_ROWS = 128


@dataclass(frozen=True)
class L1Solution:
    """Weights and intercept of the converged L1 fit, on the caller's X (not the shifted one)."""

    coef: np.ndarray
    intercept: float
    n_iter: int

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Logits ``X @ coef + intercept``, X converted to float64 a chunk of rows at a time."""
        X = np.asarray(X)
        return np.concatenate(
            [
                X[start : start + _CHUNK_ROWS].astype(np.float64) @ self.coef + self.intercept
                for start in range(0, X.shape[0], _CHUNK_ROWS)
            ]
            or [np.empty(0)]
        )

    def accuracy(self, X: np.ndarray, y: np.ndarray) -> float:
        """Fraction of rows whose predicted class (logit > 0) equals the 0/1 label."""
        predicted = (self.decision_function(X) > 0).astype(int)
        return float(np.mean(predicted == np.asarray(y).astype(int)))


def column_modes(X: np.ndarray) -> np.ndarray:
    """Each column's most frequent value (the smallest one on ties), as float64."""
    X = np.asarray(X)
    values = np.unique(X)
    if values.size > 16:
        # Not a genotype-like matrix: a median is a shift that keeps it as dense as before.
        return np.median(X, axis=0).astype(np.float64)
    counts = np.stack([(X == value).sum(axis=0) for value in values])
    return values[np.argmax(counts, axis=0)].astype(np.float64)


def shifted_sparse(X: np.ndarray, shift: np.ndarray) -> sp.csr_matrix:
    """``X - shift`` as a float64 CSR matrix, built a chunk of rows at a time."""
    X = np.asarray(X)
    blocks = [
        sp.csr_matrix(X[start : start + _CHUNK_ROWS].astype(np.float64) - shift)
        for start in range(0, X.shape[0], _CHUNK_ROWS)
    ]
    return sp.vstack(blocks, format="csr") if blocks else sp.csr_matrix((0, X.shape[1]))


def fit_l1_logistic(X: np.ndarray, y: np.ndarray, l1: float, tol: float = 1e-4) -> L1Solution:
    """The minimiser of mean BCE + ``l1`` * ||w||_1 on (X, y) (liblinear, converged to ``tol``)."""
    if l1 <= 0:
        raise ValueError(f"l1 must be positive for a sparse reference, got {l1}")
    shift = column_modes(X)
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
    model.fit(shifted_sparse(X, shift), y)
    coef = model.coef_[0].astype(np.float64)
    # w . (x - shift) + b_z = w . x + (b_z - w . shift)
    return L1Solution(coef, float(model.intercept_[0] - coef @ shift), int(np.max(model.n_iter_)))


def converged_l1_reference(
    X: np.ndarray, y: np.ndarray, folds: Sequence[tuple[np.ndarray, np.ndarray]], l1: float
) -> dict[str, Any]:
    """Per-fold accuracy and non-zero weight fraction of the converged L1 solution."""
    started = time.perf_counter()
    X, y = np.asarray(X), np.asarray(y)
    rows = []
    for train, test in folds:
        solution = fit_l1_logistic(X[train], y[train], l1)
        rows.append(
            {
                "train_accuracy": solution.accuracy(X[train], y[train]),
                "test_accuracy": solution.accuracy(X[test], y[test]),
                "nonzero_fraction": float(np.mean(solution.coef != 0)),
                "iterations": solution.n_iter,
            }
        )
    summary: dict[str, Any] = {"l1": float(l1), "solver": "liblinear", "folds": rows}
    for key in ("train_accuracy", "test_accuracy", "nonzero_fraction"):
        values = [row[key] for row in rows]
        summary[f"{key}_mean"] = float(np.mean(values))
        summary[f"{key}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    summary["seconds"] = time.perf_counter() - started
    return summary

"""Uncertainty of the metrics: stratified bootstrap intervals and label-permutation p-values.

The study reports every honest number with an interval or a test that can include chance.
The bootstrap resamples members and non-members apart (the design fixes both counts) and, for
the known metrics, recomputes them from resampled ROC or hit counts instead of re-sorting; the
permutation test shuffles the membership labels. Both draw from ``seeds.generator(seed)``, so
a seed gives the same interval and p-value on every machine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from scipy.stats import hypergeom, rankdata

from dpmia_utils import seeds

from .roc import (
    _PREDICTION_METRICS,
    _roc_counts,
    _validate_confidence,
    _validate_predictions,
    _validate_scores,
    _value_index,
    _vectorised_count_metric,
)

#: Resampled (or permuted) index arrays are drawn in chunks of about this many integers to
#: bound memory.
_CHUNK_ELEMENTS = 2_000_000


# --------------------------------------------------------------------------- bootstrap


def _resample_chunks(
    rng: np.random.Generator, n1: int, n0: int, n_bootstrap: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stratified resample indices (members, non-members), a chunk of resamples at a time."""
    chunk = max(1, _CHUNK_ELEMENTS // (n1 + n0))
    for start in range(0, n_bootstrap, chunk):
        rows = min(chunk, n_bootstrap - start)
        yield rng.integers(0, n1, size=(rows, n1)), rng.integers(0, n0, size=(rows, n0))


def _row_bincount(index: np.ndarray, size: int) -> np.ndarray:
    """Per-row counts of each value in [0, size) of a 2-D integer array."""
    rows = index.shape[0]
    flat = (index + size * np.arange(rows)[:, None]).ravel()
    return np.bincount(flat, minlength=rows * size).reshape(rows, size)


def _bootstrap_values(
    metric_fn: Callable[..., float],
    scores: np.ndarray,
    labels: np.ndarray,
    n_bootstrap: int,
    seed: int,
) -> np.ndarray:
    """The metric on ``n_bootstrap`` stratified resamples (same draws whichever path runs)."""
    members, nonmembers = scores[labels], scores[~labels]
    n1, n0 = members.size, nonmembers.size
    rng = seeds.generator(seed)
    count_metric = _vectorised_count_metric(metric_fn)
    values: list[np.ndarray] = []
    if metric_fn in _PREDICTION_METRICS:
        if not np.all(np.isin(scores, (0.0, 1.0))):
            raise ValueError("predictions must be hard 0/1 (or boolean) membership guesses")
        # Flagged members/non-members per resample: the same draws the generic loop would use.
        hit_metric = _PREDICTION_METRICS[metric_fn]
        member_hits, nonmember_hits = members.astype(np.int64), nonmembers.astype(np.int64)
        for idx1, idx0 in _resample_chunks(rng, n1, n0, n_bootstrap):
            tp, fp = member_hits[idx1].sum(axis=1), nonmember_hits[idx0].sum(axis=1)
            values.append(hit_metric(tp, fp, n1, n0))
    elif count_metric is not None:
        _, position = _value_index(scores)
        m = int(position.max()) + 1
        member_pos, nonmember_pos = position[labels], position[~labels]
        for idx1, idx0 in _resample_chunks(rng, n1, n0, n_bootstrap):
            # A resample keeps the distinct scores and only changes their multiplicities.
            tp, fp = _roc_counts(
                _row_bincount(member_pos[idx1], m), _row_bincount(nonmember_pos[idx0], m)
            )
            values.append(count_metric(tp, fp, n1, n0))
    else:
        resampled_labels = np.r_[np.ones(n1, bool), np.zeros(n0, bool)]
        for idx1, idx0 in _resample_chunks(rng, n1, n0, n_bootstrap):
            values.append(
                np.array(
                    [
                        metric_fn(np.r_[members[i1], nonmembers[i0]], resampled_labels)
                        for i1, i0 in zip(idx1, idx0, strict=True)
                    ],
                    dtype=float,
                )
            )
    return np.concatenate(values)


def _percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return float(low), float(high)


def bootstrap_ci(
    metric_fn: Callable[..., float],
    scores: Any,
    is_member: Any,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap CI of ``metric_fn(scores, is_member)``, members/non-members resampled apart.

    Resampling each side separately keeps the member/non-member counts fixed, as in the study's
    design. ``roc_auc``, ``membership_advantage``, ``best_threshold_accuracy`` and
    ``functools.partial(tpr_at_fpr, fpr_level=f)`` run vectorised on resampled ROC counts, and
    ``attack_accuracy``, ``balanced_accuracy`` and ``prediction_advantage`` (hard predictions
    passed as ``scores``) on resampled hit counts; any other callable runs once per resample on
    the same seeded draws.
    """
    values, labels = _validate_scores(scores, is_member)
    confidence = _validate_confidence(confidence)
    if int(n_bootstrap) != n_bootstrap or n_bootstrap < 2:
        raise ValueError(f"n_bootstrap must be an integer >= 2, got {n_bootstrap!r}")
    resampled = _bootstrap_values(metric_fn, values, labels, int(n_bootstrap), seed)
    return _percentile_interval(resampled, confidence)


# --------------------------------------------------------------------------- permutation test


def _permuted_membership_chunks(
    rng: np.random.Generator, labels: np.ndarray, n_permutations: int
) -> Iterator[np.ndarray]:
    """Label vectors shuffled independently per row (float 0/1), a chunk of rows at a time."""
    chunk = max(1, _CHUNK_ELEMENTS // labels.size)
    template = labels.astype(np.float64)
    for start in range(0, n_permutations, chunk):
        rows = min(chunk, n_permutations - start)
        yield rng.permuted(np.broadcast_to(template, (rows, labels.size)), axis=1)


def permutation_test(
    scores: Any,
    is_member: Any,
    *,
    predictions: Any = None,
    n_permutations: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """One-sided label-permutation p-values of the AUC and of the hard predictions' accuracy.

    Null: membership is independent of the attack's output, so every assignment of the n1
    member labels to the n individuals is equally likely. Each permutation shuffles the labels
    (seeded) and recomputes the member rank sum (the AUC is an increasing function of it) and
    the number of flagged members TP (accuracy, balanced accuracy and TPR - FPR of fixed
    predictions all increase with TP, so they share this p-value). p = (1 + #{permuted >=
    observed}) / (1 + n_permutations), valid at every level (Phipson and Smyth 2010). For the
    predictions the exact null is hypergeometric, so ``accuracy_p_value_exact`` (Fisher's exact
    test, one-sided) is given too. Vectorised: one matrix-vector product per chunk of
    permutations.
    """
    values, labels = _validate_scores(scores, is_member)
    if int(n_permutations) != n_permutations or n_permutations < 1:
        raise ValueError(f"n_permutations must be a positive integer, got {n_permutations!r}")
    n_permutations = int(n_permutations)
    n1 = int(labels.sum())
    # Mid-ranks are half-integers, so rank sums are exact in float64 and ties count 1/2.
    ranks = rankdata(values)
    observed_rank_sum = float(ranks[labels].sum())
    hits = None
    if predictions is not None:
        guesses, _ = _validate_predictions(predictions, labels)
        hits = guesses.astype(np.float64)
        observed_tp = int(guesses[labels].sum())
    rng = seeds.generator(seed)
    auc_exceed, tp_exceed = 0, 0
    for permuted in _permuted_membership_chunks(rng, labels, n_permutations):
        auc_exceed += int(np.sum(permuted @ ranks >= observed_rank_sum - 1e-6))
        if hits is not None:
            tp_exceed += int(np.sum(permuted @ hits >= observed_tp - 1e-6))
    record: dict[str, Any] = {
        "auc_p_value": (1 + auc_exceed) / (1 + n_permutations),
        "accuracy_p_value": None,
        "accuracy_p_value_exact": None,
        "n_permutations": n_permutations,
        "seed": int(seed),
        "alternative": "greater (attack better than chance)",
        "method": "membership labels shuffled; p = (1 + #{permuted >= observed}) / (1 + B)",
    }
    if hits is not None:
        flagged = int(hits.sum())
        record["accuracy_p_value"] = (1 + tp_exceed) / (1 + n_permutations)
        # TP ~ Hypergeometric(population n, flagged successes, n1 draws) under the null.
        exact = hypergeom.sf(observed_tp - 1, values.size, flagged, n1)
        record["accuracy_p_value_exact"] = float(min(1.0, max(0.0, exact)))
    return record

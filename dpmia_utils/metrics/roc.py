"""ROC counts and the membership-inference metrics computed from them.

An attack gives each individual of an evaluation set (members and non-members, nobody on both
sides) a membership score (higher = more likely a member) and, from a rule fixed before the
evaluation labels are seen, a hard 0/1 guess. A score-based attack predicts "member" when
``score >= threshold``; all threshold metrics range over the distinct scores plus "nobody is a
member", like scikit-learn's ROC curve.

Score metrics are computed from ROC counts (true and false positives at each distinct
threshold), so the bootstrap (:mod:`.intervals`) can reuse the same count formulas on resampled
multiplicities. The input checks every metric shares live here too.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.metrics import roc_curve

#: TPR at FPR level f is reported only if at least this many non-members fit in the FPR budget,
#: i.e. ``f * n_nonmembers >= MIN_FALSE_POSITIVES_FOR_TPR_AT_FPR``. Below one person the
#: "FPR <= f" constraint can only mean "zero false positives", whatever f is, so the number
#: would not describe the level it is labelled with.
MIN_FALSE_POSITIVES_FOR_TPR_AT_FPR = 1


# --------------------------------------------------------------------------- validation


def _validate_membership(is_member: Any, n: int) -> np.ndarray:
    labels = np.asarray(is_member)
    if labels.ndim != 1:
        raise ValueError(f"is_member must be one-dimensional, got shape {labels.shape}")
    if labels.shape[0] != n:
        raise ValueError(f"scores and is_member differ in length: {n} vs {labels.shape[0]}")
    if labels.dtype != bool:
        if not np.issubdtype(labels.dtype, np.number) or not np.all(np.isin(labels, (0, 1))):
            raise ValueError("is_member must hold only booleans or 0/1")
        labels = labels.astype(bool)
    n_members = int(labels.sum())
    if n_members == 0 or n_members == n:
        raise ValueError(
            f"need both members and non-members, got {n_members} members of {n} individuals"
        )
    return labels


def _validate_scores(scores: Any, is_member: Any) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray(scores)
    if values.ndim != 1:
        raise ValueError(f"scores must be one-dimensional, got shape {values.shape}")
    if values.shape[0] == 0:
        raise ValueError("scores is empty")
    if not (np.issubdtype(values.dtype, np.number) or values.dtype == bool):
        raise ValueError(f"scores must be numeric, got dtype {values.dtype}")
    values = values.astype(float)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"scores must be finite, found {int((~np.isfinite(values)).sum())} not")
    return values, _validate_membership(is_member, values.shape[0])


def _validate_predictions(predictions: Any, is_member: Any) -> tuple[np.ndarray, np.ndarray]:
    values, labels = _validate_scores(predictions, is_member)
    if not np.all(np.isin(values, (0.0, 1.0))):
        raise ValueError("predictions must be hard 0/1 (or boolean) membership guesses")
    return values.astype(bool), labels


def _validate_fpr_level(fpr_level: float) -> float:
    level = float(fpr_level)
    if not 0.0 <= level <= 1.0:
        raise ValueError(f"fpr_level must lie in [0, 1], got {fpr_level!r}")
    return level


def _validate_confidence(confidence: float) -> float:
    value = float(confidence)
    if not 0.0 < value < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    return value


# --------------------------------------------------------------------------- ROC counts


def _value_index(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct scores in descending order, and each individual's position among them."""
    ascending, inverse = np.unique(scores, return_inverse=True)
    return ascending[::-1], (ascending.size - 1) - inverse


def _roc_counts(
    member_counts: np.ndarray, nonmember_counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """True/false positives at each threshold, from per-distinct-score counts (last axis).

    Column 0 is the threshold above every score (nobody flagged); column k flags the k highest
    distinct scores. Works on one row or a stack of bootstrap rows alike.
    """
    zeros = np.zeros(member_counts.shape[:-1] + (1,), dtype=member_counts.dtype)
    tp = np.concatenate([zeros, np.cumsum(member_counts, axis=-1)], axis=-1)
    fp = np.concatenate([zeros, np.cumsum(nonmember_counts, axis=-1)], axis=-1)
    return tp, fp


def _counts_of(scores: Any, is_member: Any) -> tuple[np.ndarray, np.ndarray, int, int]:
    """ROC counts (tp, fp) of validated scores, and the numbers of members and non-members."""
    values, labels = _validate_scores(scores, is_member)
    thresholds, position = _value_index(values)
    m = thresholds.size
    tp, fp = _roc_counts(
        np.bincount(position[labels], minlength=m), np.bincount(position[~labels], minlength=m)
    )
    return tp, fp, int(labels.sum()), int((~labels).sum())


def _auc_from_counts(tp: np.ndarray, fp: np.ndarray, n1: int, n0: int) -> np.ndarray:
    # Trapezoids between consecutive thresholds: a tied member/non-member pair counts 1/2.
    area = np.sum(np.diff(fp, axis=-1) * (tp[..., 1:] + tp[..., :-1]), axis=-1)
    return area / (2.0 * n1 * n0)


def _advantage_from_counts(tp: np.ndarray, fp: np.ndarray, n1: int, n0: int) -> np.ndarray:
    return np.max(tp / n1 - fp / n0, axis=-1)


def _best_accuracy_from_counts(tp: np.ndarray, fp: np.ndarray, n1: int, n0: int) -> np.ndarray:
    return (np.max(tp - fp, axis=-1) + n0) / (n1 + n0)


def _tpr_at_fpr_from_counts(
    tp: np.ndarray, fp: np.ndarray, n1: int, n0: int, fpr_level: float
) -> np.ndarray:
    # fp / n0 is the rounded FPR exactly as an ROC curve reports it; column 0 (0, 0) always fits.
    allowed = (fp / n0) <= fpr_level
    return np.max(np.where(allowed, tp, 0), axis=-1) / n1


# --------------------------------------------------------------------------- public metrics


def roc_curve_points(scores: Any, is_member: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve (fpr, tpr, thresholds) of a membership score, every distinct threshold kept."""
    values, labels = _validate_scores(scores, is_member)
    # Keep collinear points: tpr_at_fpr-style lookups must see every achievable operating point.
    fpr, tpr, thresholds = roc_curve(labels, values, drop_intermediate=False)
    return fpr, tpr, thresholds


def roc_auc(scores: Any, is_member: Any) -> float:
    """Area under the ROC curve: P(member score > non-member score), ties counting one half."""
    tp, fp, n1, n0 = _counts_of(scores, is_member)
    return float(_auc_from_counts(tp, fp, n1, n0))


def tpr_at_fpr(scores: Any, is_member: Any, fpr_level: float) -> float:
    """Highest TPR over ROC points with FPR <= fpr_level, no interpolation (Carlini et al. 2022).

    When ``fpr_level * n_nonmembers < 1`` this is the TPR at zero false positives whatever the
    level; see :func:`tpr_at_fpr_is_estimable` before reporting it as "TPR at that FPR".
    """
    level = _validate_fpr_level(fpr_level)
    tp, fp, n1, n0 = _counts_of(scores, is_member)
    return float(_tpr_at_fpr_from_counts(tp, fp, n1, n0, level))


def tpr_at_fpr_is_estimable(
    fpr_level: float,
    n_nonmembers: int,
    min_false_positives: int = MIN_FALSE_POSITIVES_FOR_TPR_AT_FPR,
) -> bool:
    """Whether ``fpr_level`` of ``n_nonmembers`` allows at least ``min_false_positives`` people."""
    level = _validate_fpr_level(fpr_level)
    if n_nonmembers < 1:
        return False
    # Same rounding as the ROC curve: k false positives fit when k / n0 <= level.
    return min_false_positives / n_nonmembers <= level


def membership_advantage(scores: Any, is_member: Any) -> float:
    """Max over thresholds of TPR - FPR, at least 0 (optimistic: the threshold is fit on this set).

    Yeom et al.'s advantage of the best score-threshold adversary *in hindsight*; for the
    advantage of an adversary fixed in advance use :func:`prediction_advantage`.
    """
    tp, fp, n1, n0 = _counts_of(scores, is_member)
    return float(_advantage_from_counts(tp, fp, n1, n0))


def attack_accuracy(predictions: Any, is_member: Any) -> float:
    """Fraction of individuals whose hard 0/1 membership guess is right (the paper's metric)."""
    guesses, labels = _validate_predictions(predictions, is_member)
    return float(np.mean(guesses == labels))


def balanced_accuracy(predictions: Any, is_member: Any) -> float:
    """Mean of TPR and TNR of hard 0/1 guesses: accuracy as if both sides were equally large."""
    guesses, labels = _validate_predictions(predictions, is_member)
    return float(0.5 * (np.mean(guesses[labels]) + np.mean(~guesses[~labels])))


def prediction_advantage(predictions: Any, is_member: Any) -> float:
    """TPR - FPR of hard 0/1 guesses: Yeom et al.'s advantage of this one, fixed adversary."""
    guesses, labels = _validate_predictions(predictions, is_member)
    return float(np.mean(guesses[labels]) - np.mean(guesses[~labels]))


def best_threshold_accuracy(scores: Any, is_member: Any) -> float:
    """Highest accuracy of ``score >= t`` over all thresholds t (optimistic: t fit on this set)."""
    tp, fp, n1, n0 = _counts_of(scores, is_member)
    return float(_best_accuracy_from_counts(tp, fp, n1, n0))


# --------------------------------------------------------------------------- count formulas

# The bootstrap recomputes a known metric from resampled counts instead of calling it; these
# tables say which count formula gives exactly that metric.

CountMetric = Callable[[np.ndarray, np.ndarray, int, int], np.ndarray]

_COUNT_METRICS: dict[Callable[..., float], CountMetric] = {
    roc_auc: _auc_from_counts,
    membership_advantage: _advantage_from_counts,
    best_threshold_accuracy: _best_accuracy_from_counts,
}


def _accuracy_from_hits(tp: np.ndarray, fp: np.ndarray, n1: int, n0: int) -> np.ndarray:
    return (tp + n0 - fp) / (n1 + n0)


def _balanced_accuracy_from_hits(tp: np.ndarray, fp: np.ndarray, n1: int, n0: int) -> np.ndarray:
    return 0.5 * (tp / n1 + 1.0 - fp / n0)


def _advantage_from_hits(tp: np.ndarray, fp: np.ndarray, n1: int, n0: int) -> np.ndarray:
    return tp / n1 - fp / n0


#: Hard-prediction metrics as functions of (members flagged, non-members flagged, n1, n0).
_PREDICTION_METRICS: dict[Callable[..., float], CountMetric] = {
    attack_accuracy: _accuracy_from_hits,
    balanced_accuracy: _balanced_accuracy_from_hits,
    prediction_advantage: _advantage_from_hits,
}


def _vectorised_count_metric(metric_fn: Callable[..., float]) -> CountMetric | None:
    """The count formula behind a known score metric (or a fpr_level partial of tpr_at_fpr)."""
    if metric_fn in _COUNT_METRICS:
        return _COUNT_METRICS[metric_fn]
    if (
        isinstance(metric_fn, functools.partial)
        and metric_fn.func is tpr_at_fpr
        and not metric_fn.args
        and set(metric_fn.keywords) == {"fpr_level"}
    ):
        level = _validate_fpr_level(metric_fn.keywords["fpr_level"])
        return functools.partial(_tpr_at_fpr_from_counts, fpr_level=level)
    return None

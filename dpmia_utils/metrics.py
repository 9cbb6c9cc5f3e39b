"""Membership-inference metrics: ROC, AUC, TPR at low FPR, advantage, accuracy, empirical epsilon.

Every attack gives, for an evaluation set of members and non-members (no individual on both
sides), a membership score per individual (higher = more likely a member) and hard 0/1
predictions from a rule fixed before the evaluation labels are seen. A score-based attack
predicts "member" when ``score >= threshold``; all threshold metrics range over the distinct
scores plus "nobody is a member", like scikit-learn's ROC curve.

Two kinds of numbers, kept apart (the study's rule: an attack's threshold is never chosen on
the labels it is scored on). Honest ones: accuracy, balanced accuracy, advantage (TPR - FPR)
and the empirical epsilon of the fixed-rule predictions, and the threshold-free AUC and TPR at
low FPR; each carries a stratified bootstrap CI and the AUC and accuracy a label-permutation
p-value, so "no better than chance" can be read off. Optimistic ones: the best accuracy and
advantage over all thresholds of the score, chosen on the evaluation labels themselves; under
no leakage with 1,000 individuals per side they average about 0.514 and 0.028 instead of 0.5
and 0, so :func:`summarize_attack` reports them only under ``best_threshold_*`` keys, marked
optimistic and without an interval.

Score metrics are computed from ROC counts (true and false positives at each distinct
threshold). The bootstrap reuses the same count formulas on resampled multiplicities, so one
resample costs a bincount and a cumulative sum rather than a sort.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from typing import Any, Literal

import numpy as np
from scipy.stats import beta, hypergeom, rankdata
from sklearn.metrics import roc_curve

#: TPR at FPR level f is reported only if at least this many non-members fit in the FPR budget,
#: i.e. ``f * n_nonmembers >= MIN_FALSE_POSITIVES_FOR_TPR_AT_FPR``. Below one person the
#: "FPR <= f" constraint can only mean "zero false positives", whatever f is, so the number
#: would not describe the level it is labelled with.
MIN_FALSE_POSITIVES_FOR_TPR_AT_FPR = 1

#: Resampled index arrays are drawn in chunks of about this many integers to bound memory.
_BOOTSTRAP_CHUNK_ELEMENTS = 2_000_000

IntervalKind = Literal["two-sided", "one-sided"]


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


def _counts_of(scores: Any, is_member: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    values, labels = _validate_scores(scores, is_member)
    thresholds, position = _value_index(values)
    m = thresholds.size
    tp, fp = _roc_counts(
        np.bincount(position[labels], minlength=m), np.bincount(position[~labels], minlength=m)
    )
    return np.r_[np.inf, thresholds], tp, fp, int(labels.sum()), int((~labels).sum())


def _auc_from_counts(tp: np.ndarray, fp: np.ndarray, n1: int, n0: int) -> np.ndarray:
    # Trapezoids between consecutive thresholds: a tied member/non-member pair counts 1/2.
    area = np.sum(np.diff(fp, axis=-1) * (tp[..., 1:] + tp[..., :-1]), axis=-1)
    return area / (2.0 * n1 * n0)


def _advantage_from_counts(tp: np.ndarray, fp: np.ndarray, n1: int, n0: int) -> np.ndarray:
    return np.max(tp / n1 - fp / n0, axis=-1)


def _best_accuracy_from_counts(tp: np.ndarray, fp: np.ndarray, n1: int, n0: int) -> np.ndarray:
    return (np.max(tp - fp, axis=-1) + n0) / (n1 + n0)


def _best_balanced_accuracy_from_counts(
    tp: np.ndarray, fp: np.ndarray, n1: int, n0: int
) -> np.ndarray:
    return 0.5 + 0.5 * _advantage_from_counts(tp, fp, n1, n0)


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
    _, tp, fp, n1, n0 = _counts_of(scores, is_member)
    return float(_auc_from_counts(tp, fp, n1, n0))


def tpr_at_fpr(scores: Any, is_member: Any, fpr_level: float) -> float:
    """Highest TPR over ROC points with FPR <= fpr_level, no interpolation (Carlini et al. 2022).

    When ``fpr_level * n_nonmembers < 1`` this is the TPR at zero false positives whatever the
    level; see :func:`tpr_at_fpr_is_estimable` before reporting it as "TPR at that FPR".
    """
    level = _validate_fpr_level(fpr_level)
    _, tp, fp, n1, n0 = _counts_of(scores, is_member)
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
    _, tp, fp, n1, n0 = _counts_of(scores, is_member)
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
    _, tp, fp, n1, n0 = _counts_of(scores, is_member)
    return float(_best_accuracy_from_counts(tp, fp, n1, n0))


# --------------------------------------------------------------------------- empirical epsilon


def _clopper_pearson_upper(successes: Any, trials: Any, alpha: float) -> np.ndarray:
    """One-sided Clopper-Pearson upper bound at level 1 - alpha (exactly 1 when all succeed)."""
    x = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    bound = beta.ppf(1.0 - alpha, x + 1.0, np.maximum(n - x, 1.0))
    return np.where(x >= n, 1.0, bound)


def _epsilon_from_bounds(fpr_hi: np.ndarray, fnr_hi: np.ndarray, delta: float) -> np.ndarray:
    """max(log((1-delta-FNR)/FPR), log((1-delta-FPR)/FNR), 0), vectorised; non-positive terms drop."""
    with np.errstate(divide="ignore", invalid="ignore"):
        numerator_1 = 1.0 - delta - fnr_hi
        numerator_2 = 1.0 - delta - fpr_hi
        term_1 = np.where(numerator_1 > 0, np.log(np.maximum(numerator_1, 1e-300) / fpr_hi), 0.0)
        term_2 = np.where(numerator_2 > 0, np.log(np.maximum(numerator_2, 1e-300) / fnr_hi), 0.0)
    return np.maximum(np.maximum(term_1, term_2), 0.0)


def _per_bound_alpha(confidence: float, interval: IntervalKind) -> float:
    if interval == "two-sided":
        return (1.0 - confidence) / 2.0
    if interval == "one-sided":
        return 1.0 - confidence
    raise ValueError(f"interval must be 'two-sided' or 'one-sided', got {interval!r}")


def _validate_delta(delta: float) -> float:
    value = float(delta)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"delta must lie in [0, 1), got {delta!r}")
    return value


def empirical_epsilon_lower_bound(
    tp: int,
    fn: int,
    fp: int,
    tn: int,
    delta: float = 0.0,
    confidence: float = 0.95,
    interval: IntervalKind = "two-sided",
) -> dict[str, Any]:
    """Epsilon lower bound from one attack's confusion matrix with Clopper-Pearson bounds.

    (eps, delta)-DP forces TPR <= e^eps FPR + delta and TNR <= e^eps FNR + delta, so any attack
    gives eps >= max(log((1 - delta - FNR) / FPR), log((1 - delta - FPR) / FNR)). Following
    Jagielski et al. (2020) and Nasr et al. (2021) we plug in Clopper-Pearson *upper* bounds on
    FPR and FNR, floor the result at 0, and so get a bound that holds with the stated confidence.

    ``interval="two-sided"`` (default) takes each bound from the two-sided CP interval at
    ``confidence``, i.e. one-sided at 1 - (1 - confidence) / 2: by a union bound both upper
    bounds hold together with probability >= confidence, so the epsilon bound does too.
    ``"one-sided"`` takes each one-sided at ``confidence`` (joint level only 1 - 2(1 - confidence)).

    Caveat: CP treats each individual's outcome as an independent Bernoulli trial. That is exact
    when each trial is a fresh training run (the auditing setting); for one trained model
    evaluated on many members and non-members it is an approximation (see Steinke, Nasr and
    Jagielski 2023, "Privacy auditing with one (1) training run"), so read the number as an
    empirical indication, not a certificate.
    """
    counts = {"tp": tp, "fn": fn, "fp": fp, "tn": tn}
    for name, value in counts.items():
        if int(value) != value or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    tp, fn, fp, tn = (int(v) for v in (tp, fn, fp, tn))
    if tp + fn == 0 or fp + tn == 0:
        raise ValueError("need at least one member (tp + fn) and one non-member (fp + tn)")
    delta = _validate_delta(delta)
    confidence = _validate_confidence(confidence)
    alpha = _per_bound_alpha(confidence, interval)
    fpr_hi = float(_clopper_pearson_upper(fp, fp + tn, alpha))
    fnr_hi = float(_clopper_pearson_upper(fn, tp + fn, alpha))
    eps = float(_epsilon_from_bounds(np.float64(fpr_hi), np.float64(fnr_hi), delta))
    return {
        "epsilon_lower_bound": eps,
        "tp": tp,
        "fn": fn,
        "fp": fp,
        "tn": tn,
        "tpr": tp / (tp + fn),
        "fpr": fp / (fp + tn),
        "tpr_lower": 1.0 - fnr_hi,
        "fpr_upper": fpr_hi,
        "fnr_upper": fnr_hi,
        "delta": delta,
        "confidence": confidence,
        "interval": interval,
    }


def best_empirical_epsilon(
    scores: Any,
    is_member: Any,
    delta: float = 0.0,
    confidence: float = 0.95,
    interval: IntervalKind = "two-sided",
) -> dict[str, Any]:
    """Largest :func:`empirical_epsilon_lower_bound` over all thresholds ``score >= t``.

    Multiple-comparison caveat: the Clopper-Pearson confidence holds for one threshold fixed in
    advance. Picking the best of many thresholds on the same data inflates the bound, so the
    maximum is valid only heuristically. For an auditable bound choose the threshold on separate
    data (as Jagielski et al. and Nasr et al. do) and call :func:`empirical_epsilon_lower_bound`.
    The record carries ``"threshold_selected_on_evaluation_data": True`` to say so.
    """
    delta = _validate_delta(delta)
    confidence = _validate_confidence(confidence)
    alpha = _per_bound_alpha(confidence, interval)
    thresholds, tp, fp, n1, n0 = _counts_of(scores, is_member)
    fpr_hi = _clopper_pearson_upper(fp, n0, alpha)
    fnr_hi = _clopper_pearson_upper(n1 - tp, n1, alpha)
    bounds = _epsilon_from_bounds(fpr_hi, fnr_hi, delta)
    best = int(np.argmax(bounds))
    record = empirical_epsilon_lower_bound(
        int(tp[best]),
        int(n1 - tp[best]),
        int(fp[best]),
        int(n0 - fp[best]),
        delta,
        confidence,
        interval,
    )
    threshold = float(thresholds[best])
    record["threshold"] = threshold if math.isfinite(threshold) else None
    record["n_thresholds_searched"] = int(thresholds.size)
    record["threshold_selected_on_evaluation_data"] = True
    return record


# --------------------------------------------------------------------------- bootstrap


def _resample_chunks(
    rng: np.random.Generator, n1: int, n0: int, n_bootstrap: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stratified resample indices (members, non-members), a chunk of resamples at a time."""
    chunk = max(1, _BOOTSTRAP_CHUNK_ELEMENTS // (n1 + n0))
    for start in range(0, n_bootstrap, chunk):
        rows = min(chunk, n_bootstrap - start)
        yield rng.integers(0, n1, size=(rows, n1)), rng.integers(0, n0, size=(rows, n0))


def _row_bincount(index: np.ndarray, size: int) -> np.ndarray:
    """Per-row counts of each value in [0, size) of a 2-D integer array."""
    rows = index.shape[0]
    flat = (index + size * np.arange(rows)[:, None]).ravel()
    return np.bincount(flat, minlength=rows * size).reshape(rows, size)


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
    rng = np.random.default_rng(seed)
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
    chunk = max(1, _BOOTSTRAP_CHUNK_ELEMENTS // labels.size)
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
    rng = np.random.default_rng(seed)
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


# --------------------------------------------------------------------------- summary record


def _estimate(value: float, interval: tuple[float, float], **extra: Any) -> dict[str, Any]:
    return {"value": float(value), "ci95": [float(interval[0]), float(interval[1])], **extra}


def _percent(level: float) -> str:
    return f"{100 * level:g}%"


def summarize_attack(
    scores: Any,
    is_member: Any,
    *,
    predictions: Any = None,
    fpr_levels: tuple[float, ...] = (0.001, 0.01),
    delta: float = 0.0,
    n_bootstrap: int = 1000,
    n_permutations: int = 1000,
    seed: int = 0,
    min_false_positives: int = MIN_FALSE_POSITIVES_FOR_TPR_AT_FPR,
) -> dict[str, Any]:
    """One JSON-ready record of an attack's metrics, with bootstrap CIs and permutation p-values.

    ``accuracy``, ``balanced_accuracy``, ``advantage`` (TPR - FPR) and ``empirical_epsilon``
    come only from ``predictions``, hard guesses of a rule fixed without the evaluation labels;
    without predictions they are None (with a note), never a threshold chosen on this set.
    ``auc`` and ``tpr_at_fpr`` are threshold-free or low-FPR score metrics. ``auc`` and
    ``accuracy`` carry a one-sided permutation ``p_value`` (:func:`permutation_test`; the
    accuracy's also holds for balanced accuracy and advantage), so an interval or test that can
    include chance stands next to every number. ``best_threshold_accuracy`` and
    ``best_threshold_advantage`` are maxima over thresholds chosen on these very labels: biased
    upward (about +0.014 accuracy under no leakage at 1,000 per side), marked
    ``"optimistic": True`` and given no interval. TPR at FPR level f is "not estimable" (value
    None, with a note) unless ``f * n_nonmembers >= min_false_positives``. All numbers are
    Python floats/ints or None.
    """
    values, labels = _validate_scores(scores, is_member)
    n1, n0 = int(labels.sum()), int((~labels).sum())
    confidence = 0.95

    def ci(metric_fn: Callable[..., float], data: np.ndarray) -> tuple[float, float]:
        return bootstrap_ci(metric_fn, data, labels, n_bootstrap, confidence, seed)

    guesses = None
    if predictions is not None:
        guesses, _ = _validate_predictions(predictions, labels)
    test = permutation_test(
        values, labels, predictions=guesses, n_permutations=n_permutations, seed=seed
    )

    record: dict[str, Any] = {"n_members": n1, "n_nonmembers": n0}
    if guesses is not None:
        hard = guesses.astype(float)
        record["accuracy"] = _estimate(
            attack_accuracy(hard, labels),
            ci(attack_accuracy, hard),
            p_value=test["accuracy_p_value"],
            source="predictions",
        )
        record["balanced_accuracy"] = _estimate(
            balanced_accuracy(hard, labels), ci(balanced_accuracy, hard), source="predictions"
        )
        record["advantage"] = _estimate(
            prediction_advantage(hard, labels),
            ci(prediction_advantage, hard),
            source="predictions",
            definition="TPR - FPR of the fixed-rule predictions",
        )
        tp, fp = int(guesses[labels].sum()), int(guesses[~labels].sum())
        epsilon = empirical_epsilon_lower_bound(tp, n1 - tp, fp, n0 - fp, delta, confidence)
        epsilon["threshold_selected_on_evaluation_data"] = False
        epsilon["source"] = "predictions"
    else:
        note = (
            "no hard predictions from a rule fixed without the evaluation labels; "
            "see best_threshold_* for the optimistic, label-fitted numbers"
        )
        for key in ("accuracy", "balanced_accuracy", "advantage"):
            record[key] = {"value": None, "ci95": None, "source": None, "note": note}
        record["accuracy"]["p_value"] = None
        epsilon = {"epsilon_lower_bound": None, "source": None, "note": note}
    record["auc"] = _estimate(
        roc_auc(values, labels), ci(roc_auc, values), p_value=test["auc_p_value"]
    )
    optimistic_note = (
        "threshold chosen on the evaluation labels it is scored on: biased upward "
        "(no leakage, 1,000 per side: about 0.514 accuracy, 0.028 advantage); no interval"
    )
    record["best_threshold_accuracy"] = {
        "value": best_threshold_accuracy(values, labels),
        "optimistic": True,
        "note": optimistic_note,
    }
    record["best_threshold_advantage"] = {
        "value": membership_advantage(values, labels),
        "optimistic": True,
        "note": optimistic_note,
    }
    tpr_records = {}
    for level in fpr_levels:
        level = _validate_fpr_level(level)
        key = f"{level:g}"
        if tpr_at_fpr_is_estimable(level, n0, min_false_positives):
            metric = functools.partial(tpr_at_fpr, fpr_level=level)
            tpr_records[key] = _estimate(
                tpr_at_fpr(values, labels, level), ci(metric, values), fpr_level=level
            )
        else:
            tpr_records[key] = {
                "value": None,
                "ci95": None,
                "fpr_level": level,
                "note": (
                    f"not estimable: {_percent(level)} FPR of {n0} non-members is "
                    f"{level * n0:g} people, under the {min_false_positives} required"
                ),
            }
    record["tpr_at_fpr"] = tpr_records
    record["empirical_epsilon"] = epsilon
    record["bootstrap"] = {
        "n_bootstrap": int(n_bootstrap),
        "seed": int(seed),
        "confidence": confidence,
        "method": "percentile, members and non-members resampled separately",
    }
    record["permutation_test"] = {
        key: test[key]
        for key in ("n_permutations", "seed", "alternative", "method", "accuracy_p_value_exact")
    }
    record["permutation_test"]["note"] = (
        "accuracy p_value also holds for balanced_accuracy and advantage (all increase with TP)"
    )
    record["tpr_at_fpr_rule"] = (
        f"reported only if fpr_level * n_nonmembers >= {min_false_positives}; "
        "highest ROC TPR with FPR <= level, no interpolation"
    )
    return record

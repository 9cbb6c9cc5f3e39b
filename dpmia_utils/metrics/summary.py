"""One JSON-ready record of an attack: every metric with its interval, p-value or caveat.

Two kinds of numbers, kept apart (the study's rule: an attack's threshold is never chosen on
the labels it is scored on). Honest ones: accuracy, balanced accuracy, advantage (TPR - FPR)
and the empirical epsilon of the fixed-rule predictions, and the threshold-free AUC and TPR at
low FPR; each carries a stratified bootstrap CI and the AUC and accuracy a label-permutation
p-value, so "no better than chance" can be read off. Optimistic ones: the best accuracy and
advantage over all thresholds of the score, chosen on the evaluation labels themselves; under
no leakage with 1,000 individuals per side they average about 0.514 and 0.028 instead of 0.5
and 0, so :func:`summarize_attack` reports them only under ``best_threshold_*`` keys, marked
optimistic and without an interval.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from .empirical_epsilon import empirical_epsilon_lower_bound
from .intervals import bootstrap_ci, permutation_test
from .roc import (
    MIN_FALSE_POSITIVES_FOR_TPR_AT_FPR,
    _validate_fpr_level,
    _validate_predictions,
    _validate_scores,
    attack_accuracy,
    balanced_accuracy,
    best_threshold_accuracy,
    membership_advantage,
    prediction_advantage,
    roc_auc,
    tpr_at_fpr,
    tpr_at_fpr_is_estimable,
)


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

"""Empirical epsilon: the lower bound on epsilon that one attack's hard guesses prove.

(eps, delta)-DP caps how far any attack's TPR can exceed its FPR; an attack that does better
than the cap refutes every smaller epsilon. With Clopper-Pearson bounds on the error rates the
refutation holds at a stated confidence (Jagielski et al. 2020; Nasr et al. 2021). The bound
is taken only from a rule fixed before the evaluation labels are seen (the study's rule).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from scipy.stats import beta

from .roc import _validate_confidence

IntervalKind = Literal["two-sided", "one-sided"]


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

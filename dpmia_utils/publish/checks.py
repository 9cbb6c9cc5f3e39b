"""The sceptic's checks: the numbers that are bugs until shown otherwise, looked for in a
profile's results and reported with what was found, so a reader need not trust us on them.

Each check names the bug it would reveal and says what the profile shows: an attack repeat at
exactly 0.5 (a constant guess, or a tie of true and false positives?), a DP model above the
same model without DP, a DP model at the majority-class rate, a "sparse" model without zero
weights. The verdict is the data's; where the book explains a finding, the row says where.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import binom

from ..pipeline.store import ProfileStore, RecordError

ATTACKS = ("shadow", "loss", "lira")
#: A DP model whose mean target accuracy is within this many standard errors (over the folds)
#: of the majority-class rate learned nothing we can tell apart from guessing.
MAJORITY_STANDARD_ERRORS = 2.0
#: A penalised model with at least this fraction of non-zero weights is not sparse.
NOT_SPARSE = 0.99
COLUMNS = ("check", "the bug it would reveal", "what this profile shows", "verdict")


def _repeats(record: dict[str, Any], attack: str) -> list[dict[str, Any]]:
    return ((record.get("attack") or {}).get("attacks") or {}).get(attack, {}).get("repeats", [])


def _confusion(repeat: dict[str, Any]) -> tuple[int, int, int, int] | None:
    """(tp, fp, tn, fn) of a repeat's fixed-rule predictions, if its record keeps them."""
    counts = repeat.get("empirical_epsilon") or {}
    try:
        return tuple(int(counts[k]) for k in ("tp", "fp", "tn", "fn"))  # type: ignore[return-value]
    except (KeyError, TypeError, ValueError):
        return None


def tie_probability(n_members: int, n_nonmembers: int, tpr: float, fpr: float) -> float:
    """P(accuracy is exactly 0.5) on a balanced set, members and non-members predicted
    independently at these rates: with n on each side, accuracy 0.5 means TP = FP."""
    if n_members != n_nonmembers:
        return 0.0
    k = np.arange(n_members + 1)
    return float(np.sum(binom.pmf(k, n_members, tpr) * binom.pmf(k, n_nonmembers, fpr)))


def exact_half_check(store: ProfileStore, run_ids: list[str]) -> tuple[str, str]:
    """Attack repeats scoring exactly 0.5: how many, how many were constant guesses, and how
    many ties of true and false positives chance gives at each repeat's own rates."""
    total, ties, constant, unknown, unreadable = 0, 0, 0, 0, 0
    expected = 0.0
    for rid in run_ids:
        try:
            # The record alone: a published run keeps its record without its notebooks.
            record = store.read_record(rid)
        except RecordError:
            unreadable += 1
            continue
        for attack in ATTACKS:
            for repeat in _repeats(record, attack):
                total += 1
                counts = _confusion(repeat)
                if counts is not None:
                    tp, fp, tn, fn = counts
                    if tp + fn and fp + tn:
                        expected += tie_probability(
                            tp + fn, fp + tn, tp / (tp + fn), fp / (fp + tn)
                        )
                value = (repeat.get("accuracy") or {}).get("value")
                if value is None or value != 0.5:
                    continue
                if counts is None:
                    unknown += 1
                    continue
                if tp + fp == 0 or tn + fn == 0:
                    constant += 1
                else:
                    ties += 1
    exact = ties + constant + unknown
    found = f"{exact} of {total} attack repeats score exactly 0.5"
    if exact:
        found += (
            f": {constant} predicted one side for everyone (a constant guess), {ties} "
            "predicted both sides with as many true as false positives (a tie)"
            + (f", {unknown} without recorded counts" if unknown else "")
        )
    found += f"; chance gives {expected:.1f} such ties at each repeat's own TPR and FPR"
    if unreadable:
        found += f"; {unreadable} run record(s) could not be read"
    if constant or unknown or unreadable:
        verdict = "look: a constant guess means the attack model learned nothing"
        if unreadable and not (constant or unknown):
            verdict = "look: not every run could be checked"
    else:
        verdict = (
            "fine: ties of a balanced evaluation set happen by chance near 0.5" if exact else "fine"
        )
    return found, verdict


def _standard_error(std: float, n: int) -> float:
    return std / math.sqrt(n) if n > 0 and not math.isnan(std) else math.nan


def stability_limit(batch_size: int, n_features: int) -> float:
    """The largest stable SGD learning rate of a linear model on ±1 features, about
    8 x batch / features: a batch's mean logistic loss has curvature up to a quarter of
    |x|^2 / batch = features / batch for near-orthogonal examples, and SGD diverges past
    2 / curvature. Above it a baseline trains badly, and DP's clipping looks like a gain."""
    return 8.0 * batch_size / n_features


def _baseline_steps(base: pd.Series, n_features: int | None) -> tuple[str, bool]:
    """A Lasso baseline's learning rate against the stability limit: (text, above it)."""
    if n_features is None or base["model"] != "lasso" or "learning_rate" not in base:
        return "", False
    limit = stability_limit(int(base["batch_size"]), n_features)
    rate = float(base["learning_rate"])
    side = "above" if rate > limit else "within"
    return (
        f"lasso λ={base['l1']:g} baseline: learning rate {rate:g} at batch "
        f"{int(base['batch_size'])}, {side} the stability limit 8 x {int(base['batch_size'])} / "
        f"{n_features:,} = {limit:.4f}",
        rate > limit,
    )


def dp_above_baseline_check(
    complete: pd.DataFrame, folds: int, n_features: int | None = None
) -> tuple[str, str]:
    """DP points whose target accuracy exceeds the same model's without DP; with the number
    of features, each such Lasso baseline's learning rate against the stability limit."""
    above, beyond, compared, largest = 0, 0, 0, -math.inf
    steps, unstable = [], False
    for (_, _), rows in complete.groupby(["model", "l1"]):
        baseline = rows[~rows["dp"]]
        if baseline.empty:
            continue
        base = baseline.iloc[0]
        group_above = False
        for _, point in rows[rows["dp"]].iterrows():
            compared += 1
            excess = point["target_test_accuracy_mean"] - base["target_test_accuracy_mean"]
            if excess <= 0:
                continue
            above += 1
            group_above = True
            largest = max(largest, excess)
            se = math.hypot(
                _standard_error(point["target_test_accuracy_std"], folds),
                _standard_error(base["target_test_accuracy_std"], folds),
            )
            beyond += bool(excess > 2 * se)
        if group_above:  # a baseline beaten by DP: is it trained well?
            text, too_fast = _baseline_steps(base, n_features)
            steps += [text] if text else []
            unstable |= too_fast
    if not compared:
        return "no DP point has a baseline of the same model and lambda here", "not checked"
    found = f"{above} of {compared} DP points score above their baseline"
    if above:
        found += (
            f" (by at most {largest:.4f}); {beyond} of them by more than 2 standard errors of "
            "the difference"
        )
    if steps:
        found += "; " + "; ".join(steps)
    verdict = "fine" if not above else "explained: clipping regularises (Results, clip ablation)"
    if unstable:
        verdict = "look: a baseline steps past the stability limit and may be trained badly"
    elif beyond:
        verdict = "look: " + verdict
    return found, verdict


def majority_check(complete: pd.DataFrame, folds: int) -> tuple[str, str]:
    """DP models indistinguishable from predicting the majority class."""
    dp = complete[complete["dp"]]
    if dp.empty or "majority_class_rate" not in dp:
        return "no DP runs", "not checked"
    margin = dp["target_test_accuracy_mean"] - dp["majority_class_rate"]
    se = dp["target_test_accuracy_std"] / math.sqrt(folds)
    stuck = int((margin <= MAJORITY_STANDARD_ERRORS * se).sum())
    found = (
        f"{stuck} of {len(dp)} DP models within {MAJORITY_STANDARD_ERRORS:g} standard errors of "
        f"the majority-class rate ({dp['majority_class_rate'].iloc[0]:.3f}); the closest is "
        f"{margin.min():+.4f} above it"
    )
    return found, "look: such a model learned nothing" if stuck else "fine"


def sparsity_check(complete: pd.DataFrame) -> tuple[str, str]:
    """Penalised (lambda > 0) models and how many of their weights are exactly non-zero."""
    column = "target_nonzero_fraction_mean"
    if column not in complete:
        return "no model reports its non-zero weights here", "not checked"
    penalised = complete[(complete["l1"] > 0) & complete[column].notna()]
    if penalised.empty:
        return "no model with lambda > 0 reports its non-zero weights here", "not checked"
    dense = penalised[penalised[column] >= NOT_SPARSE]
    found = (
        f"{len(dense)} of {len(penalised)} models with lambda > 0 keep at least "
        f"{NOT_SPARSE:.0%} of their weights non-zero (from {penalised[column].min():.5f} to "
        f"{penalised[column].max():.5f})"
    )
    verdict = (
        "explained: SGD's proximal L1 steps rarely leave a weight at exactly zero, and DP "
        "noise moves every weight off zero at each step (Sparsity page: the converged L1 "
        "solution beside it)"
        if len(dense)
        else "fine"
    )
    return found, verdict


def _n_features(store: ProfileStore, run_ids: list[str]) -> int | None:
    """The variants the profile's models read, from the first record that says (else None)."""
    for rid in run_ids:
        try:
            n = store.read_record(rid)["target"].get("n_variants")
        except (RecordError, KeyError, TypeError):
            continue  # the attack check reports unreadable records
        if n:
            return int(n)
    return None


def sceptic_checks(store: ProfileStore, summary: pd.DataFrame, folds: int) -> pd.DataFrame:
    """One row per check: the check, the bug it would reveal, what the profile shows, verdict.

    ``summary`` as `pipeline.summary.read_summary` types it (a bool ``dp`` column)."""
    complete = summary[summary["status"] == "complete"]
    n_features = _n_features(store, complete["run_id"].astype(str).tolist())
    rows = [
        (
            "an attack at exactly 0.5",
            "an attack model that always answers the same (trained on one class)",
            *exact_half_check(store, complete["run_id"].astype(str).tolist()),
        ),
        (
            "a DP model above the same model without DP",
            "noise or clipping not applied, or a baseline trained badly",
            *dp_above_baseline_check(complete, folds, n_features),
        ),
        (
            "a DP model at the majority-class rate",
            "noise that drowns the clipped gradient (the model learns nothing)",
            *majority_check(complete, folds),
        ),
        (
            "a sparse model without zero weights",
            "an L1 penalty that is not applied",
            *sparsity_check(complete),
        ),
    ]
    return pd.DataFrame(rows, columns=list(COLUMNS))

"""The numbers the book's pages quote, computed from one profile's summary and glued by name.

`book/results.md`, `book/sparsity.md` and `book/turning_point.md` argue from the numbers of
the profile the book was built from. The results notebook (04) computes them here, glues each
under its name (myst-nb `glue`) and the pages paste them where the argument is made. Every
name is glued for every profile: where a profile did not measure something (the smoke
profile has one lambda and one DP setting; the Table 1 profiles have no DP run) the value is
a sentence that says so, never a blank, and a page reads the same either way.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ..constants import PAPER_TABLE1
from ..curves import PAPER_ACCOUNTANT
from .tables import t_interval

#: What every quote that a profile cannot give starts with.
NOT_IN_PROFILE = "Not in this profile"

MODEL_NAMES = {"lasso": "Lasso", "cnn": "CNN"}
#: The paper's two lambdas: no penalty and its one L1 strength.
PAPER_L1 = (0.0, max(float(row["l1"]) for row in PAPER_TABLE1))
CURVE_METRIC = "target_test_accuracy_mean"


def _number(value: float, digits: int = 4) -> str:
    return f"{value:.{digits}f}"


def _sig(value: float, digits: int = 3) -> str:
    """Significant digits for epsilons: 1.07, 21.7, 101."""
    return f"{value:.{digits}g}"


def _span(values: pd.Series, fmt=_number) -> str:
    low, high = float(values.min()), float(values.max())
    return fmt(low) if fmt(low) == fmt(high) else f"{fmt(low)} to {fmt(high)}"


def _config(model: str, l1: float) -> str:
    return f"{MODEL_NAMES.get(model, model)}, λ = {l1:g}"


def _ours(summary: pd.DataFrame) -> pd.DataFrame:
    """Complete runs with our loss (labelled ablations, e.g. the double sigmoid, left out)."""
    complete = summary[summary["status"] == "complete"] if "status" in summary else summary
    if "loss" in complete:
        complete = complete[complete["loss"].fillna("logits") == "logits"]
    return complete.assign(dp=complete["dp"].astype(bool), l1=complete["l1"].astype(float))


def _dp_runs(summary: pd.DataFrame) -> pd.DataFrame:
    dp = summary[summary["dp"]]
    epsilon = pd.to_numeric(dp.get(PAPER_ACCOUNTANT), errors="coerce")
    return dp[np.isfinite(epsilon) & (epsilon > 0)]


def _interval_text(run: pd.Series, metric: str, n: int) -> str:
    mean, std = float(run[f"{metric}_mean"]), float(run.get(f"{metric}_std", math.nan))
    low, high = t_interval(mean, std, n)
    if math.isnan(low):
        return _number(mean)
    return f"{_number(mean)} [{_number(low)}, {_number(high)}]"


def paper_quotes() -> dict[str, str]:
    """The paper's Table 1, one number a name: paper_lasso_dense_attack = '0.5728', etc."""
    quotes = {"paper_sparse_l1": f"{PAPER_L1[1]:g}"}
    for row in PAPER_TABLE1:
        kind = "dense" if float(row["l1"]) == 0 else "sparse"
        for metric in ("target", "attack"):
            quotes[f"paper_{row['model']}_{kind}_{metric}"] = _number(row[f"{metric}_accuracy"])
    return quotes


def paper_table() -> pd.DataFrame:
    """The paper's Table 1 as it printed it: mean ± standard deviation."""
    return pd.DataFrame(
        {
            "model": _config(row["model"], float(row["l1"])),
            "target accuracy": f"{row['target_accuracy']:.4f} ± {row['target_std']:.4f}",
            "attack accuracy": f"{row['attack_accuracy']:.4f} ± {row['attack_std']:.4f}",
        }
        for row in PAPER_TABLE1
    )


def beside_paper(summary: pd.DataFrame, folds: int, repeats: int) -> pd.DataFrame:
    """The paper's four configurations, its numbers beside ours (mean [95% interval])."""
    nodp = _ours(summary)
    nodp = nodp[~nodp["dp"]]
    rows = []
    for row in PAPER_TABLE1:
        match = nodp[(nodp["model"] == row["model"]) & np.isclose(nodp["l1"], float(row["l1"]))]
        run = match.iloc[0] if len(match) else None
        rows.append(
            {
                "model": _config(row["model"], float(row["l1"])),
                "target accuracy, paper": f"{row['target_accuracy']:.4f}",
                "target accuracy, ours": "not in this profile"
                if run is None
                else _interval_text(run, "target_test_accuracy", folds),
                "attack accuracy, paper": f"{row['attack_accuracy']:.4f}",
                "attack accuracy, ours": "not in this profile"
                if run is None
                else _interval_text(run, "shadow_accuracy", repeats),
            }
        )
    return pd.DataFrame(rows)


def results_quotes(summary: pd.DataFrame, repeats: int) -> dict[str, str]:
    """What results.md says about this profile: no-DP leakage, DP leakage, training size."""
    ours = _ours(summary)
    nodp, dp = ours[~ours["dp"]], _dp_runs(ours)
    quotes = {}
    if len(nodp) and "shadow_accuracy_mean" in nodp:
        above = sum(
            t_interval(float(r["shadow_accuracy_mean"]), float(r["shadow_accuracy_std"]), repeats)[
                0
            ]
            > 0.5
            for _, r in nodp.iterrows()
        )
        quotes["results_nodp_attack"] = (
            f"Without DP, our shadow-model attack scores {_span(nodp['shadow_accuracy_mean'])} "
            f"over the {len(nodp)} configurations of this profile, and {above} of them have a "
            "95% interval above 0.5."
        )
    else:
        quotes["results_nodp_attack"] = f"{NOT_IN_PROFILE}: it has no run without DP."
    if len(nodp) and {"lira_auc_mean", "lira_tpr_at_fpr_0.01_mean"} <= set(nodp):
        quotes["results_nodp_lira"] = (
            f"In this profile, without DP, LiRA's AUC is {_span(nodp['lira_auc_mean'])} and "
            f"its TPR at 1% FPR {_span(nodp['lira_tpr_at_fpr_0.01_mean'])} "
            "(chance: 0.5 and 0.01)."
        )
    else:
        quotes["results_nodp_lira"] = f"{NOT_IN_PROFILE}: no LiRA run without DP."
    quotes["results_dp_attack"] = _dp_attack_sentence(dp)
    if "n_train" in ours and ours["n_train"].notna().any():
        sizes = ours["n_train"].dropna()
        quotes["results_n_train"] = (
            f"In this profile a training fold has {_span(sizes, lambda v: f'{v:,.0f}')} "
            "individuals."
        )
    else:
        quotes["results_n_train"] = f"{NOT_IN_PROFILE}: its records do not give n."
    return quotes


def _dp_attack_sentence(dp: pd.DataFrame) -> str:
    if dp.empty or "shadow_accuracy_mean" not in dp:
        return f"{NOT_IN_PROFILE}: it has no DP run, so it says nothing about DP."
    epsilon = dp[PAPER_ACCOUNTANT]
    low, high = dp[epsilon == epsilon.min()], dp[epsilon == epsilon.max()]
    if epsilon.nunique() == 1:
        return (
            f"With DP, this profile has one privacy budget, ε = {_sig(epsilon.min())} "
            f"(rdp-classic), where the shadow-model attack scores "
            f"{_span(low['shadow_accuracy_mean'])}."
        )
    return (
        f"With DP, at the smallest ε of this profile ({_sig(epsilon.min())}, rdp-classic) the "
        f"shadow-model attack scores {_span(low['shadow_accuracy_mean'])}; at the largest "
        f"({_sig(epsilon.max())}), {_span(high['shadow_accuracy_mean'])}."
    )


def sparsity_quotes(summary: pd.DataFrame, repeats: int) -> dict[str, str]:
    """What sparsity.md says about this profile: non-zero weights and each effect of lambda."""
    ours = _ours(summary)
    lasso = ours[(ours["model"] == "lasso") & (ours["l1"] > 0)]
    quotes = {}
    if len(lasso) and "target_nonzero_fraction_mean" in lasso:
        l1 = float(lasso["l1"].max())
        at = lasso[np.isclose(lasso["l1"], l1)]
        parts = []
        for dp, label in ((False, "without DP"), (True, "with DP")):
            part = at[at["dp"] == dp]["target_nonzero_fraction_mean"].dropna()
            if len(part):
                parts.append(f"{_span(part, lambda v: f'{v:.2%}')} {label}")
        quotes["sparsity_nonzero"] = (
            f"In this profile, the share of our Lasso's weights that are non-zero at "
            f"λ = {l1:g} is {' and '.join(parts)}."
        )
    else:
        quotes["sparsity_nonzero"] = f"{NOT_IN_PROFILE}: it has no Lasso with λ > 0."
    quotes["sparsity_converged"] = _converged_sentence(lasso[~lasso["dp"]])
    quotes["sparsity_effect1"] = _effect1_sentence(ours[~ours["dp"]], repeats)
    quotes["sparsity_effect23"] = _effect23_sentence(_dp_runs(ours))
    return quotes


def _converged_sentence(lasso: pd.DataFrame) -> str:
    column = "converged_l1_nonzero_fraction_mean"
    runs = lasso.dropna(subset=[column]) if column in lasso else lasso.iloc[0:0]
    if runs.empty:
        return f"{NOT_IN_PROFILE}: it has no Lasso with λ > 0 trained without DP."
    run = runs.sort_values("l1").iloc[-1]
    return (
        f"In this profile, the converged solution at λ = {run['l1']:g} keeps "
        f"{run[column]:.1%} of the weights non-zero, with test accuracy "
        f"{_number(run['converged_l1_test_accuracy_mean'])}; our SGD Lasso at the same λ "
        f"reaches {_number(run['target_test_accuracy_mean'])} with "
        f"{run['target_nonzero_fraction_mean']:.2%} of its weights non-zero."
    )


def _effect1_sentence(nodp: pd.DataFrame, repeats: int) -> str:
    parts = []
    for model, runs in nodp.groupby("model", sort=False):
        dense, sparse = runs[runs["l1"] == 0], runs[runs["l1"] > 0]
        if dense.empty or sparse.empty or "shadow_accuracy_mean" not in runs:
            continue
        a, b = dense.iloc[0], sparse.sort_values("l1").iloc[-1]
        ci_a = t_interval(a["shadow_accuracy_mean"], a["shadow_accuracy_std"], repeats)
        ci_b = t_interval(b["shadow_accuracy_mean"], b["shadow_accuracy_std"], repeats)
        overlap = "overlap" if ci_a[0] <= ci_b[1] and ci_b[0] <= ci_a[1] else "do not overlap"
        parts.append(
            f"for the {MODEL_NAMES.get(model, model)}, "
            f"{_interval_text(a, 'shadow_accuracy', repeats)} at λ = 0 and "
            f"{_interval_text(b, 'shadow_accuracy', repeats)} at λ = {b['l1']:g} "
            f"(the intervals {overlap})"
        )
    if not parts:
        return f"{NOT_IN_PROFILE}: no model was trained without DP both with λ = 0 and with λ > 0."
    return (
        "In this profile, without DP, the shadow-model attack's accuracy (mean and 95% "
        "interval over the attack repeats) is, " + "; ".join(parts) + "."
    )


def _effect23_sentence(dp: pd.DataFrame) -> str:
    settings = [
        c for c in ("epochs", "batch_size", "noise_multiplier", "target_epsilon") if c in dp
    ]
    pairs, lower = 0, {"target_test_accuracy_mean": 0, "shadow_accuracy_mean": 0}
    for _, runs in dp.groupby(["model", *settings], dropna=False):
        dense, sparse = runs[runs["l1"] == 0], runs[runs["l1"] > 0]
        if dense.empty or sparse.empty:
            continue
        pairs += 1
        for column in [c for c in lower if c in runs]:
            lower[column] += int(sparse[column].mean() < dense[column].mean())
    if not pairs:
        return f"{NOT_IN_PROFILE}: no DP setting was trained both with λ = 0 and with λ > 0."
    return (
        f"In this profile, {pairs} DP settings (a model and its privacy setting) ran with both "
        f"λ = 0 and λ > 0: the sparse model's target accuracy is lower at "
        f"{lower['target_test_accuracy_mean']} of them and its shadow-model attack accuracy "
        f"lower at {lower['shadow_accuracy_mean']}, before any interval is considered."
    )


def turning_point_quotes(summary: pd.DataFrame, curve_table: pd.DataFrame) -> dict[str, str]:
    """What turning_point.md says about this profile: its epsilon design and its knees."""
    dp = _dp_runs(_ours(summary))
    if dp.empty:
        missing = f"{NOT_IN_PROFILE}: it has no DP run."
        return dict.fromkeys(("tp_design", "tp_distinct", "tp_fitted", "tp_slopes"), missing)
    epsilon = dp[PAPER_ACCOUNTANT]
    low, high = float(epsilon.min()), float(epsilon.max())
    quotes = {
        "tp_design": (
            f"This profile's DP runs span ε = {_sig(low)} to {_sig(high)} on the rdp-classic "
            f"axis, whose logarithmic mean is ε* = {_sig(_log_mean(low, high))}."
            if high > low
            else f"This profile's DP runs all have ε = {_sig(low)} (rdp-classic): one value, "
            "so no range and no knee."
        )
    }
    counts = dp.groupby(["model", "l1"])[PAPER_ACCOUNTANT].nunique()
    values = "value" if counts.max() == 1 else "values"
    quotes["tp_distinct"] = (
        f"The profile this book was built from has {_span(counts, lambda v: f'{v:.0f}')} "
        f"distinct {values} of ε per model and λ (ε = "
        f"{', '.join(_sig(v) for v in sorted(epsilon.unique()))} on the rdp-classic axis)."
    )
    rows = curve_table[curve_table["metric"] == CURVE_METRIC] if len(curve_table) else curve_table
    if rows.empty:
        no_fit = (
            f"{NOT_IN_PROFILE}: no curve could be fitted (a fit needs at least 3 DP runs with 2 "
            "distinct ε per model and λ)."
        )
        quotes["tp_fitted"] = quotes["tp_slopes"] = no_fit
        return quotes
    fitted, slopes = [], []
    for _, row in rows.iterrows():
        group = dp[(dp["model"] == row["model"]) & np.isclose(dp["l1"], float(row["l1"]))]
        e = group[PAPER_ACCOUNTANT]
        name = _config(row["model"], float(row["l1"]))
        fitted.append(
            f"{name}: {_knee(row['knee_fitted'])} "
            f"(ε* = {_sig(_log_mean(float(e.min()), float(e.max())))})"
        )
        low_b, high_b = row["b_ci95"]
        excludes = "excludes" if low_b > 0 or high_b < 0 else "includes"
        observed = (
            f"observed knee {_knee(row['knee_observed'])}, 95% interval "
            f"{_interval(row['knee_observed_ci95'])}"
            if math.isfinite(row["knee_observed"])
            else "no observed knee (fewer than 3 distinct ε)"
        )
        slopes.append(
            f"{name}: b = {row['b']:.3g} [{low_b:.3g}, {high_b:.3g}], which {excludes} 0, "
            f"R² = {row['r_squared']:.2f}; {observed}"
        )
    quotes["tp_fitted"] = (
        "In this profile the fitted knees of target accuracy are " + "; ".join(fitted) + "."
    )
    quotes["tp_slopes"] = "For target accuracy in this profile: " + "; ".join(slopes) + "."
    return quotes


def _log_mean(low: float, high: float) -> float:
    return (high - low) / math.log(high / low) if high > low else low


def _knee(value: float) -> str:
    return _sig(value) if math.isfinite(value) else "none (the fitted curve does not rise)"


def _interval(ci: Any) -> str:
    low, high = ci
    if not (math.isfinite(low) and math.isfinite(high)):
        return "not determined (too few bootstrap samples with a knee)"
    return f"[{_sig(low)}, {_sig(high)}]"


def book_quotes(summary: pd.DataFrame, curve_table: pd.DataFrame, repeats: int) -> dict[str, str]:
    """Every sentence and number the results, sparsity and turning-point pages paste.

    `summary` is the profile's summary table, `curve_table` its `curves.fit_curves` table and
    `repeats` the attack repeats each attack metric is a mean over.
    """
    return {
        **paper_quotes(),
        **results_quotes(summary, repeats),
        **sparsity_quotes(summary, repeats),
        **turning_point_quotes(summary, curve_table),
    }

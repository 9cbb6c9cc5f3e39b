"""Our results beside the paper's: how each reproduction is labelled, and Table 1's frame.

The paper's numbers live in constants.PAPER_TABLE1; this module puts our no-DP runs of a
summary table beside them with 95% t intervals, for the Table 1 page and the results chapter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from ..constants import PAPER_TABLE1

#: How each data block is labelled on every table and figure.
REPRODUCTIONS = {
    ("1_Diamide_1", "threshold", 0.0, True): "as coded (Diamide, > 0, balanced)",
    ("1_CopperSulfate_1", "mean", None, False): "as described (copper sulfate, > mean)",
}


def reproduction_label(data: dict[str, Any], trait_column: str | None = None) -> str:
    """'as coded', 'as described' or a plain description of a profile's data block."""
    if data.get("source") == "synthetic":
        return "synthetic cross (plumbing check)"
    trait = trait_column or data.get("trait", "")
    trait = trait if trait.startswith("1_") else f"1_{trait}_1"
    threshold = data.get("threshold")
    key = (
        trait,
        data.get("binarize"),
        None if threshold is None else float(threshold),
        data.get("balance"),
    )
    return REPRODUCTIONS.get(key, f"custom data ({trait}, {data.get('binarize')})")


def _t_interval(mean: float, std: float, n: int) -> tuple[float, float]:
    """95% t interval of a mean from its sample std over n folds or repeats."""
    from scipy import stats

    if n < 2 or not math.isfinite(std):
        return (math.nan, math.nan)
    half = stats.t.ppf(0.975, n - 1) * std / math.sqrt(n)
    return (mean - half, mean + half)


def table1_frame(
    summary: pd.DataFrame,
    folds: int,
    repeats: int,
    paper: Sequence[dict[str, Any]] = PAPER_TABLE1,
) -> pd.DataFrame:
    """Our no-DP runs beside the paper's Table 1: means, stds, 95% intervals, selected settings.

    ``within paper ± 2 sd`` says whether our mean lies within the paper's mean +- 2 of its stds.
    """
    paper = pd.DataFrame(list(paper))
    rows = []
    complete = summary[(summary["status"] == "complete") & (~summary["dp"].astype(bool))]
    for _, run in complete.iterrows():
        match = paper[(paper["model"] == run["model"]) & (paper["l1"] == float(run["l1"]))]
        ref = match.iloc[0] if len(match) else None
        row = {
            "model": run["model"],
            "lambda": float(run["l1"]),
            "loss": run.get("loss", "logits"),
            "learning rate": run["learning_rate"],
            "epochs": int(run["epochs"]),
            "batch": int(run["batch_size"]),
        }
        for ours, theirs, stat, n in (
            ("target_test_accuracy", "target", "target accuracy", folds),
            ("shadow_accuracy", "attack", "attack accuracy", repeats),
        ):
            mean, std = float(run[f"{ours}_mean"]), float(run[f"{ours}_std"])
            low, high = _t_interval(mean, std, n)
            row[stat] = mean
            row[f"{stat} std"] = std
            row[f"{stat} 95% CI"] = f"[{low:.4f}, {high:.4f}]"
            if ref is not None:
                p_mean, p_std = float(ref[f"{theirs}_accuracy"]), float(ref[f"{theirs}_std"])
                row[f"paper {stat}"] = f"{p_mean:.4f} ± {p_std:.4f}"
                row[f"{stat} within paper ± 2 sd"] = abs(mean - p_mean) <= 2 * p_std
        for column, name in (
            ("shadow_auc_mean", "shadow AUC"),
            ("lira_auc_mean", "LiRA AUC"),
            ("lira_accuracy_mean", "LiRA accuracy"),
            ("lira_tpr_at_fpr_0.01_mean", "LiRA TPR at 1% FPR"),
            ("loss_accuracy_mean", "loss-attack accuracy"),
            ("target_nonzero_fraction_mean", "non-zero weights"),
        ):
            if column in run:
                row[name] = run[column]
        rows.append(row)
    return pd.DataFrame(rows)

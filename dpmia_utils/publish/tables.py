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


def t_interval(mean: float, std: float, n: int) -> tuple[float, float]:
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
            low, high = t_interval(mean, std, n)
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
            # Memorisation, beside the attack it drives (the double-sigmoid ablation trains less).
            ("target_train_accuracy_mean", "train accuracy"),
        ):
            if column in run:
                row[name] = run[column]
        rows.append(row)
    return pd.DataFrame(rows)


def dataset_counts(dataset: Any) -> pd.DataFrame:
    """How many individuals and variants a prepared trait (data.PreparedTrait) has, and its
    classes: the data chapter's first table."""
    provenance = dataset.provenance
    counts = pd.Series(
        {
            "segregants in the files": provenance["n_samples_raw"],
            "variants": dataset.n_variants,
            f"missing {dataset.trait}": provenance["n_missing_phenotype"],
            "segregants kept": dataset.n_samples,
            "class 0 (at or below threshold)": int((dataset.labels == 0).sum()),
            "class 1 (above threshold)": int((dataset.labels == 1).sum()),
            "binarization threshold": round(float(dataset.threshold), 4),
            "imputed genotype calls": provenance["n_imputed"],
        },
        name="value",
        dtype=object,
    )
    return counts.to_frame()


def missing_by_trait(phenotypes: pd.DataFrame) -> pd.DataFrame:
    """Missing and measured values of every trait in a phenotype table, most missing first."""
    missing = phenotypes.isna().sum().rename("missing").to_frame()
    missing["measured"] = phenotypes.notna().sum()
    return missing.sort_values("missing", ascending=False)


def _sizes(values: Sequence[int]) -> str:
    low, high = min(values), max(values)
    return f"{low:,}" if low == high else f"{low:,} to {high:,}"


def describe_splits(sizes: dict[str, Any], profile: str) -> str:
    """A sentence from stages.StudySplits.describe(): halves, folds and the fold sizes."""
    return (
        f"In profile {profile}, the target half has {sizes['n_target']:,} individuals in "
        f"{sizes['folds']} cross-validation folds: each target model trains on "
        f"{_sizes(sizes['fold_train_sizes'])} and is tested on "
        f"{_sizes(sizes['fold_test_sizes'])}. The shadow half has {sizes['n_shadow']:,}."
    )

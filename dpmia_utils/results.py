"""The summary table: one tidy row per configuration of a profile, complete or not.

Every planned run gets a row, so a failed or never-run configuration is visible as a gap
(status "failed" or "missing") instead of silently vanishing from the figures.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from .store import ProfileStore, RecordError, atomic_write_text

PARAM_COLUMNS = (
    "model",
    "l1",
    "dp",
    "epochs",
    "batch_size",
    "noise_multiplier",
    "target_epsilon",
    "learning_rate",
    "l2_clip",
    "microbatch_fraction",
    "sampling",
    "n_kernels",
    "kernel_size",
    "dropout",
    "loss",
    "engine",
    "seed",
)
ACCOUNTANT_COLUMNS = {
    "rdp": "epsilon_rdp",
    "pld": "epsilon_pld",
    "rdp-classic": "epsilon_rdp_classic",
}


def _number(value: Any) -> float:
    """A record value as a float; None (not estimable / not applicable) becomes NaN."""
    if value is None:
        return math.nan
    return float(value)


def flatten_record(record: dict[str, Any]) -> dict[str, Any]:
    """One summary row from a validated run record."""
    params, target, attack = record["params"], record["target"], record["attack"]
    row: dict[str, Any] = {"run_id": record["run_id"], "group": record["group"]}
    # A run that searched its hyperparameters shows the values it selected.
    selected = (target.get("selection") or {}).get("selected", {})
    row.update({key: selected.get(key, params.get(key)) for key in PARAM_COLUMNS})
    row["selected"] = ",".join(selected) if selected else ""
    # The noise actually used (calibrated when the run asked for a target epsilon).
    row["noise_multiplier"] = target.get("noise_multiplier", params.get("noise_multiplier"))
    epsilons = target.get("epsilon") or {}
    for accountant, column in ACCOUNTANT_COLUMNS.items():
        row[column] = _number(epsilons.get(accountant)) if params["dp"] else math.inf
    row["delta"] = _number(target.get("delta"))
    for key in ("test_accuracy", "train_accuracy", "nonzero_fraction"):
        row[f"target_{key}_mean"] = _number(target.get(f"{key}_mean"))
        row[f"target_{key}_std"] = _number(target.get(f"{key}_std"))
    row["n_train"] = target.get("n_train")
    # What a model that learned nothing scores on held-out data: the majority-class rate.
    counts = (target.get("dataset") or {}).get("provenance", {}).get("class_counts") or {}
    total = sum(counts.values())
    row["majority_class_rate"] = max(counts.values()) / total if total else math.nan
    reference = target.get("converged_l1_reference") or {}
    for key in ("test_accuracy", "nonzero_fraction"):
        row[f"converged_l1_{key}_mean"] = _number(reference.get(f"{key}_mean"))
    for name, result in attack["attacks"].items():
        for metric, stats in result.get("metrics", {}).items():
            row[f"{name}_{metric}_mean"] = _number(stats.get("mean"))
            row[f"{name}_{metric}_std"] = _number(stats.get("std"))
    row["seconds"] = _number(record["provenance"].get("seconds"))
    row["seconds_per_epoch"] = _number(target.get("seconds_per_epoch"))
    # The larger of the two stage kernels' peaks (records from before it was kept: NaN).
    peaks = [target.get("peak_rss_mb"), attack.get("info", {}).get("peak_rss_mb")]
    row["peak_rss_mb"] = max((_number(v) for v in peaks if v is not None), default=math.nan)
    return row


def summary_table(store: ProfileStore, planned: list | None = None) -> pd.DataFrame:
    """Rows for every planned run (or every complete run when no plan is given).

    With a plan (`runner.plan_runs`, which decides what counts as complete), only runs it
    calls complete give a row of results; without one, any record that validates does. Every
    other run is a "failed" (recorded failure) or "missing" row: a gap, never numbers.
    """
    rows = []
    if planned is None:
        ids = [(rid, None, None, True) for rid in store.complete_run_ids()]
    else:
        ids = [(p.run_id, p.spec, p.spec.label, p.status == "complete") for p in planned]
    for rid, spec, label, complete in ids:
        try:
            if not complete:
                raise RecordError(f"{rid}: not complete")
            row = flatten_record(store.load_record(rid))
            row["status"] = "complete"
        except (RecordError, KeyError, TypeError, ValueError):
            row = {"run_id": rid, "group": spec.group if spec else None}
            if spec is not None:
                row.update({key: spec.params.get(key) for key in PARAM_COLUMNS})
            row["status"] = "failed" if store.failure_path(rid).exists() else "missing"
        row["label"] = label
        rows.append(row)
    table = pd.DataFrame(rows)
    if not table.empty and "label" in table and table["label"].isna().all():
        table["label"] = table["run_id"]
    return table


def write_summary(profile: Any, store: ProfileStore, planned: list | None = None) -> pd.DataFrame:
    """Write the profile's summary.csv atomically and return it."""
    table = summary_table(store, planned)
    atomic_write_text(store.summary_path, table.to_csv(index=False))
    return table


def read_summary(store: ProfileStore) -> pd.DataFrame:
    """Read summary.csv with the types the figures expect (bool dp, float epsilons)."""
    table = pd.read_csv(store.summary_path)
    if "dp" in table:
        table["dp"] = table["dp"].astype(str).str.lower().isin(["true", "1"])
    for column in ACCOUNTANT_COLUMNS.values():
        if column in table:
            table[column] = pd.to_numeric(table[column], errors="coerce")
    return table


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
    summary: pd.DataFrame, paper: pd.DataFrame, folds: int, repeats: int
) -> pd.DataFrame:
    """Our no-DP runs beside the paper's Table 1: means, stds, 95% intervals, selected settings.

    ``within_2sd`` says whether our mean lies within the paper's mean +- 2 of its stds.
    """
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

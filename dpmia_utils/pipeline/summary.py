"""The summary table: one tidy row per configuration of a profile, complete or not.

Every planned run gets a row, so a failed or never-run configuration is visible as a gap
(status "failed" or "missing") instead of silently vanishing from the figures.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ..jsonio import atomic_write_text
from .store import ProfileStore, RecordError

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
    # No privacy without noise: clipping alone (DP-SGD at noise 0) has an infinite epsilon,
    # which the record's JSON holds as null (JSON has no infinity).
    private = params["dp"] and row["noise_multiplier"] != 0
    for accountant, column in ACCOUNTANT_COLUMNS.items():
        row[column] = _number(epsilons.get(accountant)) if private else math.inf
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
    # What made the numbers: a page can then flag runs of an older version of the science code.
    row["code_version"] = record["provenance"].get("code_version")
    row["finished"] = record["provenance"].get("finished")
    row["seconds"] = _number(record["provenance"].get("seconds"))
    row["seconds_per_epoch"] = _number(target.get("seconds_per_epoch"))
    # The larger of the two stage kernels' peaks (records from before it was kept: NaN).
    peaks = [target.get("peak_rss_mb"), attack.get("info", {}).get("peak_rss_mb")]
    row["peak_rss_mb"] = max((_number(v) for v in peaks if v is not None), default=math.nan)
    return row


def summary_table(store: ProfileStore, planned: list | None = None) -> pd.DataFrame:
    """Rows for every planned run (or every complete run when no plan is given).

    With a plan (`pipeline.plan.plan_runs`, which decides what counts as complete), only runs it
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

"""What the DP CNN's restricted search costs: the `paper` profile trains every DP CNN point at
the attack scripts' values (learning rate 0.01, clip 1.0), where the authors' grid selected
each point by 5-fold CV; `paper-cnn-search` selects two of those points over learning rate x
clip norm. The page sets each selected point beside the fixed one, fold by fold: both use the
same folds, so the difference is paired.

The selected point's accuracy is the best of its candidates scored on the folds that chose it,
so it is optimistic by the selection; the page gives the selection's bias estimate beside it
(publish.selection_bias) and says so next to the numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ..pipeline.summary import read_summary
from .pages import published_or_local_store
from .selection_bias import fold_scores, tibshirani_bias

SEARCH_PROFILE = "paper-cnn-search"
FIXED_PROFILE = "paper"
#: The parameters that name a point of the grid (a searched run and its fixed twin share them).
POINT_KEYS = ("model", "l1", "dp", "epochs", "batch_size", "noise_multiplier")

#: The frame's columns (a searched run without a fixed twin leaves the fixed ones empty).
COLUMNS = (
    "noise",
    "epsilon (rdp-classic)",
    "selected learning rate",
    "selected clip",
    "candidates",
    "search minutes",
    "searched target accuracy",
    "selection bias",
    "searched shadow attack",
    "searched LiRA AUC",
    "fixed learning rate",
    "fixed clip",
    "fixed target accuracy",
    "fixed shadow attack",
    "fixed LiRA AUC",
    "difference",
    "difference se",
    "scripts' candidate in the search",
)
#: (profile, run ID) -> that run's record.
RecordReader = Callable[[str, str], dict]


def _twin(fixed: pd.DataFrame, row: pd.Series) -> pd.Series | None:
    """The complete fixed run at the same grid point as a searched run, if any."""
    same = np.ones(len(fixed), dtype=bool)
    for key in POINT_KEYS:
        column = fixed[key]
        if pd.api.types.is_float_dtype(column):
            same &= np.isclose(column.to_numpy(dtype=float), float(row[key]))
        else:
            same &= (column == row[key]).to_numpy()
    found = fixed[same & (fixed["status"] == "complete").to_numpy()]
    return found.iloc[0] if len(found) else None


def _scripts_candidate(selection: dict, fixed_params: dict) -> dict | None:
    """The search's candidate with the fixed run's values (learning rate and clip)."""
    for candidate in selection.get("candidates", []):
        if all(
            math.isclose(float(candidate[k]), float(fixed_params[k]))
            for k in selection.get("searched", [])
        ):
            return candidate
    return None


def search_cost_frame(
    fixed: pd.DataFrame, searched: pd.DataFrame, record: RecordReader
) -> pd.DataFrame:
    """One row per complete searched run: its selected values and scores beside the fixed
    twin's, the paired difference in target accuracy over the folds (mean and standard
    error), and what the search took. A searched run without a fixed twin keeps its own
    numbers; the twin's are missing."""
    rows = []
    for _, row in searched[searched["status"] == "complete"].iterrows():
        mine = record(SEARCH_PROFILE, str(row["run_id"]))["target"]
        selection = mine.get("selection") or {}
        out = {
            "noise": float(row["noise_multiplier"]),
            "epsilon (rdp-classic)": float(row["epsilon_rdp_classic"]),
            "selected learning rate": float(row["learning_rate"]),
            "selected clip": float(row["l2_clip"]),
            "candidates": selection.get("n_candidates"),
            "search minutes": selection.get("seconds", float("nan")) / 60,
            "searched target accuracy": float(row["target_test_accuracy_mean"]),
            "selection bias": tibshirani_bias(*fold_scores(selection))
            if selection
            else float("nan"),
            "searched shadow attack": float(row["shadow_accuracy_mean"]),
            "searched LiRA AUC": float(row["lira_auc_mean"]),
        }
        twin = _twin(fixed, row)
        if twin is not None:
            theirs = record(FIXED_PROFILE, str(twin["run_id"]))
            diff = np.asarray(mine["fold_test_accuracy"]) - np.asarray(
                theirs["target"]["fold_test_accuracy"]
            )
            candidate = _scripts_candidate(selection, theirs["params"])
            out.update(
                {
                    "fixed learning rate": float(twin["learning_rate"]),
                    "fixed clip": float(twin["l2_clip"]),
                    "fixed target accuracy": float(twin["target_test_accuracy_mean"]),
                    "fixed shadow attack": float(twin["shadow_accuracy_mean"]),
                    "fixed LiRA AUC": float(twin["lira_auc_mean"]),
                    "difference": float(diff.mean()),
                    "difference se": float(diff.std(ddof=1) / math.sqrt(len(diff))),
                    # The search scores the scripts' values too, on the same folds: equal to the
                    # fixed run's accuracy when both trainings are the same (they share it).
                    "scripts' candidate in the search": (
                        float(candidate["mean_test_accuracy"]) if candidate else float("nan")
                    ),
                }
            )
        rows.append(out)
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _pair(fixed: float, selected: float, spec: str) -> str:
    shown = "-" if pd.isna(fixed) else format(fixed, spec)
    return f"{shown} / {format(selected, spec)}"


def search_cost_markdown(frame: pd.DataFrame) -> str:
    """The table the methods page shows: one row per searched point."""
    if frame.empty:
        return "No complete run of the searched points yet.\n"
    frame = frame.reindex(columns=COLUMNS)
    rows = []
    for _, r in frame.iterrows():
        rows.append(
            {
                "noise (epsilon)": f"{r['noise']:g} ({r['epsilon (rdp-classic)']:.1f})",
                "learning rate: fixed / selected": _pair(
                    r["fixed learning rate"], r["selected learning rate"], "g"
                ),
                "clip: fixed / selected": _pair(r["fixed clip"], r["selected clip"], "g"),
                "target accuracy: fixed / selected": _pair(
                    r["fixed target accuracy"], r["searched target accuracy"], ".4f"
                ),
                "selection bias (Tibshirani)": f"{r['selection bias']:.4f}",
                "paired difference ± se": "-"
                if pd.isna(r["difference"])
                else f"{r['difference']:+.4f} ± {r['difference se']:.4f}",
                "shadow attack: fixed / selected": _pair(
                    r["fixed shadow attack"], r["searched shadow attack"], ".4f"
                ),
                "LiRA AUC: fixed / selected": _pair(
                    r["fixed LiRA AUC"], r["searched LiRA AUC"], ".4f"
                ),
                "search: candidates, minutes": f"{r['candidates']:.0f}, {r['search minutes']:.1f}",
            }
        )
    table = pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True) + "\n"
    twins = frame.dropna(subset=["fixed target accuracy"])
    agree = np.isclose(
        twins["scripts' candidate in the search"],
        twins["fixed target accuracy"],
        rtol=0,
        atol=1e-12,
    )
    if len(twins) and agree.all():
        table += (
            "\nWithin each search, the candidate at the scripts' values scores exactly the "
            "fixed run's accuracy: the same trainings, on the same folds.\n"
        )
    elif len(twins):
        table += (
            "\n**The search's candidate at the scripts' values does not score the fixed run's "
            "accuracy** at noise "
            + ", ".join(f"{n:g}" for n in twins.loc[~agree, "noise"])
            + ": the two profiles did not train the same models.\n"
        )
    return table


def pending_points_note(searched: pd.DataFrame) -> str:
    """What the table leaves out: the searched points not computed yet (none: empty)."""
    pending = searched[searched["status"] != "complete"]
    if pending.empty:
        return ""
    noises = ", ".join(f"{n:g}" for n in sorted(pending["noise_multiplier"]))
    return (
        f"\n{len(searched) - len(pending)} of the {len(searched)} searched points are computed; "
        f"not yet the one(s) at noise {noises} (`python -m dpmia_utils run "
        f"parameters/{SEARCH_PROFILE}.yml` computes them).\n"
    )


def write_search_cost_page(path: Path) -> None:
    """The `paper-cnn-search` section the DP methods page includes: the table, or how to make
    it when the profile has not been computed."""
    searched_store = published_or_local_store(SEARCH_PROFILE)
    fixed_store = published_or_local_store(FIXED_PROFILE)
    if searched_store is None or fixed_store is None:
        missing = SEARCH_PROFILE if searched_store is None else FIXED_PROFILE
        path.write_text(
            f"Not computed on this machine yet: `python -m dpmia_utils run "
            f"parameters/{missing}.yml` computes it.\n",
            encoding="utf-8",
        )
        return
    stores = {SEARCH_PROFILE: searched_store, FIXED_PROFILE: fixed_store}

    def record(profile: str, run_id: str) -> dict:
        return stores[profile].read_record(run_id)

    # An unreadable record raises RecordError: the build stops and says which.
    searched = read_summary(searched_store)
    frame = search_cost_frame(read_summary(fixed_store), searched, record)
    path.write_text(
        f"Results from `{searched_store.root.name}` beside `{fixed_store.root.name}` "
        "(target accuracy: mean over the 5 CV folds; the selected value is the best of its "
        "candidates on those folds, so optimistic by the selection; the difference is paired "
        "over the same folds):\n\n" + search_cost_markdown(frame) + pending_points_note(searched),
        encoding="utf-8",
    )

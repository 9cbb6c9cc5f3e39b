"""How optimistic a selected model's accuracy is: the best of several candidates, scored on the
folds that chose it, is biased upward. Two estimates from the candidates' fold scores a record
already keeps, with no model trained again:

- **Tibshirani and Tibshirani (2009)**: for each fold, how much worse the selected candidate
  did there than the fold's own best; the mean over folds estimates the bias of the minimum
  CV error (Ann. Appl. Stat. 3(2), 822-829).
- **selection cross-validated over the folds**: for each fold, select on the other folds and
  score the winner on that one. Each candidate's fold model never trained on its fold, but the
  other folds' models did, so this is close to, not equal to, nested CV.

Both matter where a selected DP point is compared with a selected baseline: each side carries
its own selection's bias, over grids of different sizes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..pipeline.store import ProfileStore


def fold_scores(selection: dict[str, Any]) -> tuple[np.ndarray, int]:
    """(folds x candidates) held-out accuracies, and the selected candidate's column."""
    candidates = selection["candidates"]
    scores = np.array([c["fold_test_accuracy"] for c in candidates], dtype=float).T
    selected = next(i for i, c in enumerate(candidates) if c["rank"] == 1)
    return scores, selected


def tibshirani_bias(scores: np.ndarray, selected: int) -> float:
    """Mean over folds of (the fold's best candidate - the selected one), on that fold: >= 0."""
    return float(np.mean(scores.max(axis=1) - scores[:, selected]))


def cross_validated_selection(scores: np.ndarray) -> float:
    """Mean over folds of the accuracy, on that fold, of the candidate with the best mean over
    the other folds (the first such candidate on a tie, as the search ranks them)."""
    folds = scores.shape[0]
    held_out = []
    for k in range(folds):
        others = np.delete(scores, k, axis=0).mean(axis=0)
        held_out.append(scores[k, int(np.argmax(others))])
    return float(np.mean(held_out))


def selection_bias_frame(store: ProfileStore, summary: pd.DataFrame) -> pd.DataFrame:
    """One row per complete run whose record keeps a selection: its CV accuracy and both
    estimates. ``summary`` as `pipeline.summary.read_summary` types it (a bool ``dp`` column).
    A record that cannot be read raises RecordError (the build stops)."""
    rows = []
    for _, row in summary[summary["status"] == "complete"].iterrows():
        selection = store.read_record(str(row["run_id"]))["target"].get("selection")
        if not selection:
            continue
        scores, selected = fold_scores(selection)
        cv = float(scores[:, selected].mean())
        bias = tibshirani_bias(scores, selected)
        rows.append(
            {
                "label": row["label"],
                "model": row["model"],
                "l1": float(row["l1"]),
                "dp": bool(row["dp"]),
                "loss": row.get("loss", "logits"),
                "candidates": scores.shape[1],
                "cv accuracy": cv,
                "bias (Tibshirani)": bias,
                "corrected": cv - bias,
                "selection cross-validated": cross_validated_selection(scores),
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "label",
            "model",
            "l1",
            "dp",
            "loss",
            "candidates",
            "cv accuracy",
            "bias (Tibshirani)",
            "corrected",
            "selection cross-validated",
        ],
    )


def _kind(model: str, l1: float, dp: bool, loss: str) -> str:
    name = f"{model}, λ={l1:g}, {'DP' if dp else 'no DP'}"
    return name if loss == "logits" else f"{name}, loss {loss}"


def selection_bias_markdown(frame: pd.DataFrame) -> str:
    """Per kind of selected run (model, lambda, DP or not, loss): the mean of each estimate;
    then the DP points of each (model, lambda) against their baseline, as scored and with both
    sides corrected."""
    if frame.empty:
        return "No run of this profile selects its settings.\n"
    keys = ["model", "l1", "dp", "loss"]
    kinds = (
        frame.groupby(keys)
        .agg(
            runs=("label", "size"),
            candidates=("candidates", "max"),
            cv=("cv accuracy", "mean"),
            bias=("bias (Tibshirani)", "mean"),
            max_bias=("bias (Tibshirani)", "max"),
            nested=("selection cross-validated", "mean"),
        )
        .reset_index()
    )
    table = pd.DataFrame(
        {
            "selected runs": [_kind(r.model, r.l1, r.dp, r.loss) for r in kinds.itertuples()],
            "runs": kinds["runs"].astype(str),
            "candidates": kinds["candidates"].astype(str),
            "mean CV accuracy": kinds["cv"].map("{:.4f}".format),
            "bias, mean (max)": [f"{r.bias:.4f} ({r.max_bias:.4f})" for r in kinds.itertuples()],
            "corrected, mean": (kinds["cv"] - kinds["bias"]).map("{:.4f}".format),
            "selection cross-validated, mean": kinds["nested"].map("{:.4f}".format),
        }
    )
    text = table.to_markdown(index=False, disable_numparse=True) + "\n"
    lines = []
    for (model, l1, loss), same in frame.groupby(["model", "l1", "loss"]):
        base, dp = same[~same["dp"]], same[same["dp"]]
        if len(base) != 1 or dp.empty:
            continue
        base = base.iloc[0]
        raw = dp["cv accuracy"] - base["cv accuracy"]
        fixed = dp["corrected"] - base["corrected"]
        lines.append(
            f"- {_kind(model, l1, True, loss)}: its {len(dp)} points are on average "
            f"{raw.mean():+.4f} from the baseline as scored and {fixed.mean():+.4f} with both "
            f"sides corrected; {int((raw > 0).sum())} lie above it as scored, "
            f"{int((fixed > 0).sum())} corrected (the highest: {raw.max():+.4f} as scored, "
            f"{fixed.max():+.4f} corrected, itself the best of {len(dp)})."
        )
    if lines:
        text += "\nDP points against their baseline, each selected over its own grid:\n\n"
        text += "\n".join(lines) + "\n"
    return text

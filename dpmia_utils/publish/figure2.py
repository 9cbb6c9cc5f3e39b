"""The results chapter's Figure 2 panels and tables, each labelled with its reproduction.

`plots.privacy_curve` draws the paper's layout; this module fits the curves it draws, puts
epsilon on the paper's accountant, names that accountant on the axis and the reproduction in
the caption, and builds the chapter's header and tables, so the notebook holds no logic.
"""

from __future__ import annotations

import html
import math
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from pandas.io.formats.style import Styler

from ..curves import PAPER_ACCOUNTANT, PRIVACY_SETTINGS, fit_log_curves_by_model
from ..pipeline.summary import ACCOUNTANT_COLUMNS
from . import plots

#: How each epsilon column is named on an axis or a table.
ACCOUNTANT_NAMES = {
    "epsilon_rdp": "RDP",
    "epsilon_pld": "PLD",
    "epsilon_rdp_classic": "RDP, classic conversion: the paper's accountant",
}


def majority_class_rate(summary: pd.DataFrame) -> float:
    """The majority-class rate of the profile's data, from its complete runs (NaN if absent).

    Every run of a profile reads the same data, so the runs must agree; a disagreement
    means the summary mixes datasets and is raised rather than averaged.
    """
    if "majority_class_rate" not in summary:
        return math.nan
    complete = summary[summary["status"] == "complete"] if "status" in summary else summary
    rates = pd.to_numeric(complete["majority_class_rate"], errors="coerce").dropna().unique()
    if rates.size == 0:
        return math.nan
    if np.ptp(rates) > 1e-12:
        raise ValueError(f"runs disagree on the majority-class rate: {sorted(rates)}")
    return float(rates[0])


def privacy_figure(
    summary: pd.DataFrame,
    metric: str,
    *,
    ylabel: str,
    profile: str,
    reproduction: str,
    epsilon_column: str = PAPER_ACCOUNTANT,
    chance: float | None = None,
    chance_label: str = "chance",
) -> plt.Figure | None:
    """Figure 2 layout for `metric` (summary column `{metric}_mean`): points, log fits, bands.

    Fits a + b ln(epsilon) per (model, lambda) on `epsilon_column`, draws them with
    `plots.privacy_curve`, names the accountant on the x axis and puts the profile and its
    reproduction in the caption. A NaN `chance` draws no chance line; a metric the profile did
    not measure draws no figure (None).
    """
    column = f"{metric}_mean"
    if column not in summary or summary[column].isna().all():
        return None
    fits = fit_log_curves_by_model(summary, column, epsilon_column)
    if chance is not None and not math.isfinite(chance):
        chance = None
    fig = plots.privacy_curve(
        summary,
        metric,
        fits,
        ylabel=ylabel,
        epsilon_column=epsilon_column,
        profile=f"{profile}, {reproduction}",
        chance=chance,
        chance_label=chance_label,
    )
    name = ACCOUNTANT_NAMES.get(epsilon_column, epsilon_column)
    for ax in fig.axes:
        ax.set_xlabel(f"ε ({name})")
    return fig


def gluable(fig: plt.Figure | None, missing: str) -> Any:
    """What the book glues for a figure: the figure, or a note where the profile has none.

    A glued name must exist for every profile (the strict build fails on a missing one), so
    a figure `privacy_figure` could not draw is glued as an HTML note that says why.
    """
    if fig is not None:
        return fig
    from IPython.display import HTML

    return HTML(f"<p><em>Not in this profile: {html.escape(missing)}.</em></p>")


def epsilon_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Epsilon of every DP setting of a profile under each accountant, with its delta.

    One row per model and privacy setting; settings that no run used (e.g. a target epsilon
    in a noise grid) are left out. Runs of the same setting that disagree (each counts the
    steps its training really took) each keep their row.
    """
    dp = summary[summary["dp"].astype(bool)]
    if "status" in dp:
        dp = dp[dp["status"] == "complete"]
    settings = [c for c in PRIVACY_SETTINGS if c in dp and dp[c].notna().any()]
    epsilons = [c for c in ACCOUNTANT_COLUMNS.values() if c in dp]
    columns = ["model", *settings, *[c for c in ("delta",) if c in dp], *epsilons]
    table = dp[columns].drop_duplicates().sort_values(["model", *settings])
    counts = [c for c in ("epochs", "batch_size") if c in settings]
    return table.astype({c: "Int64" for c in counts}).reset_index(drop=True)


#: The columns of the sparsity-at-equal-privacy table and how the table names them.
SPARSITY_COLUMNS = {
    "target_test_accuracy_mean": "target accuracy",
    "shadow_accuracy_mean": "attack accuracy (shadow)",
    "lira_auc_mean": "LiRA AUC",
    "target_nonzero_fraction_mean": "non-zero weights (ours)",
    "converged_l1_nonzero_fraction_mean": "non-zero weights (converged L1)",
    "converged_l1_test_accuracy_mean": "target accuracy (converged L1)",
    PAPER_ACCOUNTANT: "ε (rdp-classic)",
}

#: Losses other than ours, shown only as labelled ablations.
ABLATION_LOSSES = {"paper-double-sigmoid": "paper-double-sigmoid (ablation)"}


#: A list of missing runs longer than this is folded away (here and on the Results page).
FOLDED_GAP_ROWS = 10


def chapter_header(
    profile: str, reproduction: str, summary: pd.DataFrame, folds: int, repeats: int
) -> str:
    """Markdown: the profile, its reproduction, what the means are over, and any gap."""
    complete = summary[summary["status"] == "complete"]
    gap = summary[summary["status"] != "complete"]
    n_dp = int(complete["dp"].astype(bool).sum())
    text = (
        f"Profile **{profile}**, reproduction **{reproduction}**: {len(complete)} of "
        f"{len(summary)} configurations complete ({n_dp} with DP, {len(complete) - n_dp} "
        f"without). Target accuracy is the mean over the {folds} CV folds; attack metrics are "
        f"the mean over {repeats} attack repeats."
    )
    if len(gap):
        table = gap[["label", "status"]].to_markdown(index=False)
        text += f" **Missing or failed: {len(gap)}** (listed below; the figures omit them).\n\n"
        if len(gap) <= FOLDED_GAP_ROWS:
            return text + table
        # A grid computed across sessions can miss most of its runs: fold the list (raw HTML,
        # which both Jupyter and the book's GitHub-flavoured output rendering keep).
        text += (
            f"<details><summary>The {len(gap)} configurations, one per row</summary>\n\n"
            f"{table}\n\n</details>\n"
        )
    return text


def mark_ablations(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with ablation losses (the authors' double sigmoid) named as ablations."""
    if "loss" not in frame:
        return frame
    return frame.assign(loss=frame["loss"].replace(ABLATION_LOSSES))


def format_number(value: object) -> str:
    """A table cell: 4 decimals, or 4 significant digits below 0.01 (lambda 0.001352 stays)."""
    if value is pd.NA:
        return "-"
    if isinstance(value, bool | np.bool_ | int | np.integer) or not isinstance(
        value, float | np.floating
    ):
        return str(value)
    if math.isnan(value):
        return "-"
    if value == 0 or not math.isfinite(value) or abs(value) >= 0.01:
        return f"{value:.4f}"
    return f"{value:.4g}"


def captioned(frame: pd.DataFrame, caption: str, empty_note: str = "no rows") -> Styler:
    """The frame styled for the book: a caption, numbers by `format_number`, no row numbers."""
    if frame.empty:
        caption = f"{caption} ({empty_note})"
    styler = frame.style.set_caption(caption).format(format_number)
    styler = styler.format_index(format_number, axis=0).format_index(format_number, axis=1)
    if isinstance(frame.index, pd.RangeIndex):
        styler = styler.hide(axis="index")
    return styler

"""The book's generated pages: the epsilon of the paper's privacy settings, and Table 1 (ours
beside the paper's, with how each configuration was selected); and the provenance note that
every page showing a profile's results carries (`provenance_note`).

The pages are markdown written into book/_generated when the book is assembled; they read the
profiles and the summaries, never a model.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .. import paths
from ..accounting import epsilons_all
from ..constants import PAPER_DELTA, PAPER_TRAINING_ROWS
from ..jsonio import read_json
from ..pipeline.codeversion import code_version
from ..pipeline.cost import cost_markdown, profile_cost
from ..pipeline.profiles import load_profile
from ..pipeline.store import ProfileStore
from ..pipeline.summary import read_summary
from .figure2 import FOLDED_GAP_ROWS
from .tables import reproduction_label, table1_frame


def paper_privacy_settings() -> list[tuple[int, int, float]]:
    """The paper's (epochs, batch size, noise) settings, read from the paper profile's DP runs."""
    runs = load_profile(paths.parameters_dir() / "paper.yml").runs
    dp = {(r.params["epochs"], r.params["batch_size"], r.params["noise_multiplier"]) for r in runs}
    return sorted(s for s in dp if s[2] is not None)


def write_epsilon_page(path: Path) -> None:
    """The epsilon of each of the paper's 20 settings under its accountant and the modern ones."""
    rows = []
    for epochs, batch, noise in paper_privacy_settings():
        eps = epsilons_all(PAPER_TRAINING_ROWS, batch, epochs, noise, delta=PAPER_DELTA)
        rows.append(
            {
                "epochs": epochs,
                "batch": batch,
                "noise": noise,
                "rdp-classic (the paper's)": eps["rdp-classic"],
                "rdp (improved conversion)": eps["rdp"],
                "pld": eps["pld"],
                "pld / paper's": eps["pld"] / eps["rdp-classic"],
            }
        )
    table = pd.DataFrame(rows).sort_values("rdp-classic (the paper's)")
    path.write_text(
        "# The epsilon of the paper's privacy settings\n\n"
        f"Computed by `dpmia_utils.accounting` for n = {PAPER_TRAINING_ROWS}, "
        f"delta = {PAPER_DELTA} and Poisson sampling with q = batch / n over "
        "ceil(epochs * n / batch) steps, as the paper did. The `rdp-classic` column is the "
        "paper's accountant (the classic conversion over tensorflow-privacy's tutorial orders) "
        "and reproduces its published table to better "
        "than 1e-6 relative; `rdp` (improved conversion) and `pld` (privacy loss "
        "distributions) are tighter bounds for the same training, so the same models are "
        "more private than the paper's numbers say.\n\n"
        + table.to_markdown(index=False, floatfmt=".6g")
        + "\n",
        encoding="utf-8",
    )


#: The profiles whose results make the Table 1 page, in the order shown.
TABLE1_PROFILES = ("table1", "table1-ablation", "table1-described")


def published_or_local_store(profile: str) -> ProfileStore | None:
    """Where a profile's results are for a page that shows another profile than the book's:
    published with the repository, else local; None if neither."""
    for store in (
        ProfileStore.for_published(profile),
        ProfileStore.for_profile(profile, paths.results_dir()),
    ):
        if store.summary_path.exists():
            return store
    return None


def _selection_markdown(store: ProfileStore, summary: pd.DataFrame) -> str:
    """Per selected run: the winner and how close the runners-up came (mean CV accuracy)."""
    lines = []
    for _, row in summary[summary["status"] == "complete"].iterrows():
        record = read_json(store.run_dir(str(row["run_id"])) / "record.json")
        selection = record["target"].get("selection")
        if not selection:
            continue
        candidates = pd.DataFrame(selection["candidates"]).sort_values("rank")
        shown = _readable(candidates.drop(columns=["fold_test_accuracy"]).head(4))
        lines.append(
            f"**{row['label']}**: {selection['n_candidates']} candidates, "
            f"{selection['fold_trainings']} fold trainings, {selection['seconds']:.0f} s.\n\n"
            + shown.to_markdown(index=False, disable_numparse=True)
            + "\n"
        )
    return "\n".join(lines)


def _readable(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells: whole numbers as integers, lambdas and learning rates as written (0.001352),
    other numbers to 4 decimals (tabulate would otherwise re-parse and round them)."""
    frame = frame.copy()
    for column in frame:
        values = frame[column]
        if values.dtype.kind != "f":
            continue
        if column in ("lambda", "learning rate", "learning_rate"):
            frame[column] = values.map(lambda v: f"{v:g}")
        elif values.notna().all() and (values % 1 == 0).all():
            frame[column] = values.astype(int).astype(str)
        else:
            frame[column] = values.map(lambda v: "-" if pd.isna(v) else f"{v:.4f}")
    return frame


def _table1_markdown(frame: pd.DataFrame) -> str:
    """Two tables, target models then attacks, each mean ± sd with its interval, so neither is
    much wider than a page."""
    if frame.empty:
        return "No complete no-DP run yet.\n"
    frame = frame.copy()
    for stat in ("target accuracy", "attack accuracy"):
        frame[stat] = [
            f"{m:.4f} ± {s:.4f}" for m, s in zip(frame[stat], frame[f"{stat} std"], strict=True)
        ]
        frame = frame.drop(columns=f"{stat} std")
    frame = _readable(frame).rename(
        columns={
            "target accuracy within paper ± 2 sd": "within paper ± 2 sd",
            "attack accuracy within paper ± 2 sd": "attack within paper ± 2 sd",
            "target accuracy 95% CI": "95% CI",
            "attack accuracy 95% CI": "attack 95% CI",
            "paper target accuracy": "paper",
            "paper attack accuracy": "paper attack",
            "attack accuracy": "shadow attack accuracy",
        }
    )
    keys = ["model", "lambda", "loss"]
    settings = ["learning rate", "epochs", "batch", "non-zero weights"]
    target = ["target accuracy", "95% CI", "paper", "within paper ± 2 sd", "train accuracy"]
    attack = [c for c in frame if c not in keys + settings + target]
    return (
        "**Target models** (selected settings; accuracy: mean ± sd over the CV folds)\n\n"
        + frame[[c for c in keys + settings + target if c in frame]].to_markdown(
            index=False, disable_numparse=True
        )
        + "\n\n**Attacks** (mean ± sd over repeats; AUC and TPR from the attacks' scores)\n\n"
        + frame[keys + attack].to_markdown(index=False, disable_numparse=True)
        + "\n"
    )


def _shown_path(folder: Path) -> Path:
    """A folder as the reader knows it: relative to the repository when inside it."""
    return folder.relative_to(paths.REPO_ROOT) if folder.is_relative_to(paths.REPO_ROOT) else folder


def provenance_note(
    summary: pd.DataFrame, current: str | None = None, profile: str | None = None
) -> str:
    """When the runs finished and which science code made them; runs of another code version
    than the current one are flagged, never silently mixed with current ones.

    `summary` holds the runs whose numbers a page shows (a profile's summary, or some of its
    rows); with `profile` the note opens by naming it ("Profile `quick`: computed by ...").
    """
    current = current or code_version()
    complete = summary[summary["status"] == "complete"]
    if complete.empty or "code_version" not in complete:
        note = "Code version of these runs: not recorded in their summary (older records).\n"
    else:
        note = _versions_note(complete, current)
    return _of_profile(profile, note) if profile else note


def _of_profile(profile: str, sentence: str) -> str:
    """'Profile `p`: ...' before a sentence, its first letter lowered."""
    return f"Profile `{profile}`: {sentence[0].lower()}{sentence[1:]}"


def cost_page_markdown(profile: str, summary: pd.DataFrame) -> str:
    """The Reproducing page's cost section: what the profile's runs took (pipeline.cost)."""
    return _of_profile(profile, cost_markdown(profile_cost(summary)))


def _versions_note(complete: pd.DataFrame, current: str) -> str:
    versions = complete["code_version"].astype(str)
    finished = complete["finished"].dropna() if "finished" in complete else complete.iloc[0:0]
    dates = finished.astype(str).str[:10]
    when = f", finished {dates.min()} to {dates.max()}" if len(dates) else ""
    older = complete[versions != current]
    if older.empty:
        return f"Computed by the current science code (version `{current}`){when}.\n"
    others = ", ".join(f"`{v}`" for v in sorted(set(versions[versions != current])))
    return (
        f"**{len(older)} of {len(complete)} run(s) were computed by another version of the "
        f"science code** ({others}; current `{current}`){when}: {_run_list(older)}. Rerun the "
        "profile to bring them up to date.\n"
    )


#: Beyond this many runs a note counts them by group instead of naming each one.
NAMED_RUNS = 6


def _run_list(runs: pd.DataFrame) -> str:
    """The runs by label when few, else counted by group (a grid's 80 labels drown a note)."""
    if len(runs) <= NAMED_RUNS or "group" not in runs:
        return ", ".join(runs.get("label", runs["run_id"]).astype(str))
    counts = runs["group"].astype(str).value_counts(sort=False)
    return "runs of " + ", ".join(f"group `{group}` ({n})" for group, n in counts.items())


def gap_markdown(gap: pd.DataFrame) -> str:
    """A markdown table of the runs missing from the book's results."""
    lines = ["| run | configuration | status |", "| --- | --- | --- |"]
    for _, row in gap.iterrows():
        lines.append(f"| `{row['run_id']}` | {row.get('label', '')} | {row['status']} |")
    table = "\n".join(lines) + "\n"
    if len(gap) <= FOLDED_GAP_ROWS:
        return table
    # A grid computed across sessions can miss most of its runs: fold the list.
    return f":::{{dropdown}} The {len(gap)} runs, one per row\n{table}:::\n"


def write_table1_page(path: Path) -> None:
    """The Table 1 page: ours (both reproductions) beside the paper's, and the selections."""
    parts = [
        "# Table 1: models without DP, ours beside the paper's\n",
        "Target accuracy: mean over the 5 CV folds of the configuration that 5-fold CV selected "
        "(as the paper's `GridSearchCV`, optimistic by the selection); attack accuracy: the "
        "paper's shadow-model attack, mean over its repeats. Intervals are 95% t intervals of "
        "the mean; *within paper ± 2 sd* compares our mean with the paper's mean and standard "
        "deviation. LiRA's accuracy uses its a-priori rule, never a threshold chosen on the "
        "evaluation labels. The paper's numbers are its Table 1, for the as-coded data.\n",
    ]
    for profile_name in TABLE1_PROFILES:
        store = published_or_local_store(profile_name)
        profile = load_profile(paths.parameters_dir() / f"{profile_name}.yml")
        label = reproduction_label(profile.blocks["data"])
        parts.append(f"## {label}: profile `{profile_name}`\n")
        if store is None:
            parts.append(
                f"Not computed on this machine: `python -m dpmia_utils run "
                f"parameters/{profile_name}.yml` computes it (`table1` took 49 min on 2 cores "
                "with `--workers 2`).\n"
            )
            continue
        summary = read_summary(store)
        frame = table1_frame(
            summary,
            folds=profile.blocks["split"]["folds"],
            repeats=profile.blocks["attack"]["repeats"],
        )
        missing = int((summary["status"] != "complete").sum())
        parts.append(
            f"Results from `{_shown_path(store.root)}`"
            + (f"; **{missing} run(s) missing or failed**" if missing else "")
            + ".\n"
        )
        parts.append(provenance_note(summary, profile=profile_name))
        parts.append(_table1_markdown(frame))
        parts.append("### The selection\n")
        parts.append(_selection_markdown(store, summary))
    path.write_text("\n".join(parts), encoding="utf-8")

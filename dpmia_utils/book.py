"""Assemble the executed notebooks of one profile into book/_generated and build the book.

The book never re-trains: it renders notebooks that papermill already executed. A grid with
missing or failed runs does not build silently: `build_book` refuses unless the caller allows
a partial grid, and then the results notebook lists the gap.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import paths
from .runner import PROFILE_STAGES, RUN_STAGES, load_complete_record
from .store import ProfileStore, RecordError, read_json

GENERATED = "book/_generated"


class BookError(RuntimeError):
    """The book cannot be assembled or built; the message says what is missing."""


@dataclass(frozen=True)
class BuildResult:
    """Where the HTML went and what was assembled."""

    html_dir: Path
    index: Path
    representative_run: str


def representative_run(store: ProfileStore) -> str:
    """Pick the run whose stage notebooks the book shows: non-DP Lasso with L1 if present.

    Only runs of the current summary count: the store may still hold runs that an earlier
    code version or data file produced.
    """
    candidates = list(store.complete_run_ids())
    if store.summary_path.exists():
        summary = pd.read_csv(store.summary_path)
        current = set(summary.loc[summary["status"] == "complete", "run_id"].astype(str))
        candidates = [rid for rid in candidates if rid in current]
    records = []
    for rid in candidates:
        try:
            records.append(load_complete_record(store, rid))
        except RecordError:
            continue
    if not records:
        raise BookError(f"no complete runs in {store.root}: run `python -m dpmia_utils run` first")

    def preference(record: dict) -> tuple:
        p = record["params"]
        return (p["dp"], p["model"] != "lasso", p["l1"] == 0, record["run_id"])

    return min(records, key=preference)["run_id"]


def missing_runs(store: ProfileStore) -> pd.DataFrame:
    """Rows of the summary whose run is not complete (failed, never run, or no longer valid).

    A run the summary calls complete is checked again: its folder may have been damaged
    since the summary was written, and the book must not present it.
    """
    if not store.summary_path.exists():
        raise BookError(f"{store.summary_path} does not exist: the grid has not been summarised")
    summary = pd.read_csv(store.summary_path)
    complete = summary["status"] == "complete"
    for index in summary.index[complete]:
        try:
            load_complete_record(store, str(summary.at[index, "run_id"]))
        except RecordError:
            summary.at[index, "status"] = "invalid"
    return summary[summary["status"] != "complete"]


def _gap_markdown(gap: pd.DataFrame) -> str:
    """A markdown table of the runs missing from the book's results."""
    lines = ["| run | configuration | status |", "| --- | --- | --- |"]
    for _, row in gap.iterrows():
        lines.append(f"| `{row['run_id']}` | {row.get('label', '')} | {row['status']} |")
    return "\n".join(lines) + "\n"


#: Tags that Jupyter Book reads: the notebook's default parameters mean nothing to a reader
#: (papermill overrode them), while the injected values are the run's provenance, one click away.
BOOK_CELL_TAGS = {"parameters": "remove-cell", "injected-parameters": "hide-input"}


def copy_for_book(source: Path, destination: Path) -> None:
    """Copy an executed notebook, tagging its parameter cells for display (outputs untouched)."""
    notebook = json.loads(source.read_text(encoding="utf-8"))
    for cell in notebook.get("cells", []):
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        for tag, display in BOOK_CELL_TAGS.items():
            if tag in tags and display not in tags:
                tags.append(display)
    destination.write_text(json.dumps(notebook, indent=1, ensure_ascii=False), encoding="utf-8")


def assemble(
    profile: str,
    results_root: Path | None = None,
    allow_partial: bool = False,
    book_root: Path = paths.REPO_ROOT,
) -> str:
    """Copy the profile's executed notebooks into book/_generated; return the run shown."""
    store = ProfileStore.for_profile(profile, results_root)
    gap = missing_runs(store)
    if len(gap) and not allow_partial:
        labels = ", ".join(gap["label"].astype(str).head(5))
        raise BookError(
            f"{len(gap)} run(s) of profile '{profile}' are missing or failed ({labels}...): "
            "rerun `python -m dpmia_utils run` or pass --allow-partial to show the gap in the book"
        )
    rid = representative_run(store)
    target = book_root / GENERATED
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for stage in PROFILE_STAGES:
        source = store.stages_dir / f"{stage}.ipynb"
        if not source.exists():
            raise BookError(f"{source} is missing: the profile stage '{stage}' did not complete")
        copy_for_book(source, target / source.name)
    for stage, _ in RUN_STAGES:
        copy_for_book(store.run_dir(rid) / f"{stage}.ipynb", target / f"{stage}.ipynb")
    record = store.load_record(rid)
    (target / "profile.md").write_text(
        f"```{{note}}\nThese results come from the **{profile}** profile "
        f"(`parameters/{profile}.yml`). The stage notebooks shown are run `{rid}` "
        f"({record['params']['model']}, lambda={record['params']['l1']:g}, "
        f"{'DP' if record['params']['dp'] else 'no DP'}).\n"
        + (f"{len(gap)} run(s) of this profile are missing or failed.\n" if len(gap) else "")
        + "```\n"
        + (
            "\n**Runs missing from these results** (the figures and tables omit them):\n\n"
            + _gap_markdown(gap)
            if len(gap)
            else ""
        )
    )
    write_table1_page(target / "table1.md")
    write_epsilon_page(target / "epsilon_table.md")
    return rid


#: The paper's training-set size and delta (its epsilon table's).
PAPER_N, PAPER_DELTA = 1504, 0.00066489


def paper_privacy_settings() -> list[tuple[int, int, float]]:
    """The paper's (epochs, batch size, noise) settings, read from the paper profile's DP runs."""
    from .grid import load_profile

    runs = load_profile(paths.parameters_dir() / "paper.yml").runs
    dp = {(r.params["epochs"], r.params["batch_size"], r.params["noise_multiplier"]) for r in runs}
    return sorted(s for s in dp if s[2] is not None)


def write_epsilon_page(path: Path) -> None:
    """The epsilon of each of the paper's 20 settings under its accountant and the modern ones."""
    from .accounting import epsilons_all

    rows = []
    for epochs, batch, noise in paper_privacy_settings():
        eps = epsilons_all(PAPER_N, batch, epochs, noise, delta=PAPER_DELTA)
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
        f"Computed by `dpmia_utils.accounting` for n = {PAPER_N}, delta = {PAPER_DELTA} and "
        "Poisson sampling with q = batch / n over ceil(epochs * n / batch) steps, as the paper "
        "did. The `rdp-classic` column is the paper's accountant (the classic conversion over "
        "tensorflow-privacy's tutorial orders) and reproduces its published table to better "
        "than 1e-6 relative; `rdp` (improved conversion) and `pld` (privacy loss "
        "distributions) are tighter bounds for the same training, so the same models are "
        "more private than the paper's numbers say.\n\n"
        + table.to_markdown(index=False, floatfmt=".6g")
        + "\n",
        encoding="utf-8",
    )


#: The profiles whose results make the Table 1 page, in the order shown.
TABLE1_PROFILES = ("table1", "table1-described")


def _table1_store(profile: str) -> ProfileStore | None:
    """Where a Table 1 profile's results are: published with the repository, else local."""
    for root in (paths.published_dir(), paths.results_dir()):
        store = ProfileStore.for_profile(profile, root)
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


def publish_profile(profile: str, results_root: Path | None = None) -> Path:
    """Copy a profile's summary and complete runs' records (no weights) into published/."""
    source = ProfileStore.for_profile(profile, results_root)
    if not source.summary_path.exists():
        raise BookError(f"{source.summary_path} does not exist: run the profile first")
    target = ProfileStore.for_profile(profile, paths.published_dir())
    if target.root.exists():
        shutil.rmtree(target.root)
    target.runs_dir.mkdir(parents=True)
    shutil.copy2(source.summary_path, target.summary_path)
    summary = pd.read_csv(source.summary_path)
    for rid in summary.loc[summary["status"] == "complete", "run_id"].astype(str):
        (target.runs_dir / rid).mkdir()
        for name in ("record.json", "params.json"):
            shutil.copy2(source.run_dir(rid) / name, target.run_dir(rid) / name)
    return target.root


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
    target = ["target accuracy", "95% CI", "paper", "within paper ± 2 sd"]
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


def write_table1_page(path: Path) -> None:
    """The Table 1 page: ours (both reproductions) beside the paper's, and the selections."""
    from .grid import load_profile
    from .plots import PAPER_TABLE1
    from .results import read_summary, reproduction_label, table1_frame

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
        store = _table1_store(profile_name)
        profile = load_profile(paths.parameters_dir() / f"{profile_name}.yml")
        label = reproduction_label(profile.blocks["data"])
        parts.append(f"## {label}: profile `{profile_name}`\n")
        if store is None:
            parts.append(
                f"Not computed on this machine: `python -m dpmia_utils run "
                f"parameters/{profile_name}.yml` computes it (about an hour on 2 cores).\n"
            )
            continue
        summary = read_summary(store)
        frame = table1_frame(
            summary,
            PAPER_TABLE1,
            folds=profile.blocks["split"]["folds"],
            repeats=profile.blocks["attack"]["repeats"],
        )
        missing = int((summary["status"] != "complete").sum())
        parts.append(
            f"Results from `{_shown_path(store.root)}`"
            + (f"; **{missing} run(s) missing or failed**" if missing else "")
            + ".\n"
        )
        parts.append(_table1_markdown(frame))
        parts.append("### The selection\n")
        parts.append(_selection_markdown(store, summary))
    path.write_text("\n".join(parts), encoding="utf-8")


BOOK_SOURCES = ("_config.yml", "_toc.yml", "book", "notebooks")


def copy_book_sources(book_root: Path) -> None:
    """Copy the book's sources to another root, so a build there leaves _build/ here alone."""
    book_root.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("_generated", "__pycache__", ".ipynb_checkpoints")
    for name in BOOK_SOURCES:
        source, target = paths.REPO_ROOT / name, book_root / name
        if source.is_dir():
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target, ignore=ignore)
        else:
            shutil.copy2(source, target)


def build_book(
    profile: str = "quick",
    *,
    results_root: Path | None = None,
    strict: bool = False,
    allow_partial: bool = False,
    book_root: Path | None = None,
) -> BuildResult:
    """Assemble and build the HTML book; strict mode turns every Sphinx warning into an error.

    `book_root` builds a copy of the book elsewhere (the tests do), leaving the repository's
    own `_build/` untouched.
    """
    if book_root is None:
        book_root = paths.REPO_ROOT
    elif Path(book_root).resolve() != paths.REPO_ROOT:
        copy_book_sources(Path(book_root))
    rid = assemble(profile, results_root, allow_partial, Path(book_root))
    command = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(book_root)]
    if strict:
        command += ["-W", "-n", "--keep-going"]
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        raise BookError(
            "jupyter-book build failed:\n" + (completed.stdout[-4000:] + completed.stderr[-4000:])
        )
    html = Path(book_root) / "_build" / "html"
    return BuildResult(html_dir=html, index=html / "index.html", representative_run=rid)

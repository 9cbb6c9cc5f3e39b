"""Assemble the executed notebooks of one profile into book/_generated and build the book.

The book never re-trains: it renders notebooks that papermill already executed, from the
results store or (``published=True``) from the results published with the repository
(``publication.publish_profile``: every run's record, and the notebooks of the profile stages
and of the runs the book shows). A grid with missing or failed runs does not build silently:
`build_book` refuses unless the caller allows a partial grid, and then the results notebook
lists the gap. Every page that shows the profile's results says which runs made them and
flags any of another code version (`pages.provenance_note`).
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .. import paths
from ..pipeline.codeversion import PROFILE_STAGES, RUN_STAGES
from ..pipeline.plan import load_complete_record
from ..pipeline.store import ProfileStore, RecordError
from ..pipeline.summary import read_summary
from . import chapters
from .pages import (
    cost_page_markdown,
    gap_markdown,
    provenance_note,
    write_epsilon_page,
    write_table1_page,
)
from .quotes import MODEL_NAMES
from .search_cost import write_search_cost_page
from .selection_bias import selection_bias_frame, selection_bias_markdown

GENERATED = "book/_generated"
#: The profile stage whose page shows the whole profile's results (the others show its data).
RESULTS_STAGE = "04_curve_fitting"


class BookError(RuntimeError):
    """The book cannot be assembled or built; the message says what is missing."""


@dataclass(frozen=True)
class BuildResult:
    """Where the HTML went and what was assembled."""

    html_dir: Path
    index: Path
    representative_run: str


def current_records(store: ProfileStore) -> list[dict]:
    """The valid records of the runs the current summary calls complete (possibly none).

    The store may still hold runs that an earlier code version or data file produced.
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
    return records


def _current_records(store: ProfileStore) -> list[dict]:
    """:func:`current_records`, at least one (BookError otherwise)."""
    records = current_records(store)
    if not records:
        raise BookError(f"no complete runs in {store.root}: run `python -m dpmia_utils run` first")
    return records


def _baseline_preference(record: dict) -> tuple:
    p = record["params"]
    ablation = p.get("loss", "logits") != "logits"
    return (p["dp"], ablation, p["model"] != "lasso", p["l1"] == 0, record["run_id"])


NotebooksAt = Callable[[str], bool]


def has_run_notebooks(store: ProfileStore, rid: str, every: bool = True) -> bool:
    """Whether the run's folder holds every stage notebook (in a results store every complete
    run does; in a published one only the runs the book shows), or with `every=False` any."""
    found = [(store.run_dir(rid) / f"{stage}.ipynb").exists() for stage, _ in RUN_STAGES]
    return all(found) if every else any(found)


def _published_with_notebooks(store: ProfileStore) -> NotebooksAt:
    # Any notebook: a run published with its notebooks and missing one since is still the
    # one to show, and `assemble` then says to publish again instead of showing another.
    return lambda rid: has_run_notebooks(store, rid, every=False)


def representative_run(store: ProfileStore, notebooks_at: NotebooksAt | None = None) -> str:
    """Pick the run whose stage notebooks the book shows: non-DP Lasso with L1 if present,
    with our loss rather than a labelled ablation (the authors' double sigmoid).

    Runs whose notebooks are at hand (`notebooks_at`, default: in the store) come first, so a
    published profile that kept an older run's record without its notebooks still shows one.
    """
    at = notebooks_at or _published_with_notebooks(store)
    return min(
        _current_records(store), key=lambda r: (not at(r["run_id"]), *_baseline_preference(r))
    )["run_id"]


#: The DP run shown beside the baseline is the one whose epsilon (the paper's accountant) is
#: closest to the paper's chosen trade-off, on a log scale.
SHOWN_EPSILON = 10.0


def _epsilon(record: dict) -> float:
    value = record["target"].get("epsilon", {}).get("rdp-classic")
    return float(value) if value is not None else math.inf


def dp_companion(
    store: ProfileStore, baseline: str, notebooks_at: NotebooksAt | None = None
) -> str | None:
    """The DP run shown beside the baseline: same model and lambda if the profile has one.

    Among those, the one whose epsilon is closest to SHOWN_EPSILON; without a DP run of the
    baseline's model and lambda, any DP run (Lasso with L1 first). None if the profile has no
    DP run, or no run without DP (then the baseline is itself a DP run).
    """
    records = _current_records(store)
    base = next(r for r in records if r["run_id"] == baseline)["params"]
    dp = [r for r in records if r["params"]["dp"]]
    if not dp or base["dp"]:
        return None

    at = notebooks_at or _published_with_notebooks(store)

    def preference(record: dict) -> tuple:
        p, eps = record["params"], _epsilon(record)
        distance = abs(math.log(eps / SHOWN_EPSILON)) if 0 < eps < math.inf else math.inf
        return (
            not at(record["run_id"]),
            (p["model"], p["l1"]) != (base["model"], base["l1"]),
            *_baseline_preference(record)[1:4],
            distance,
            record["run_id"],
        )

    return min(dp, key=preference)["run_id"]


def checked_summary(store: ProfileStore) -> pd.DataFrame:
    """The profile's summary, with each run it calls complete checked again ("invalid" if not).

    A run's folder may have been damaged since the summary was written, and the book must
    not present it.
    """
    if not store.summary_path.exists():
        raise BookError(f"{store.summary_path} does not exist: the grid has not been summarised")
    summary = read_summary(store)  # typed once here: a bool dp column for every page
    complete = summary["status"] == "complete"
    for index in summary.index[complete]:
        try:
            load_complete_record(store, str(summary.at[index, "run_id"]))
        except RecordError:
            summary.at[index, "status"] = "invalid"
    return summary


def missing_runs(store: ProfileStore) -> pd.DataFrame:
    """Rows of the summary whose run is not complete (failed, never run, or no longer valid)."""
    summary = checked_summary(store)
    return summary[summary["status"] != "complete"]


def describe_run(record: dict) -> str:
    """'Lasso, λ = 0.001352, no DP', or with DP its noise (or target) and its epsilon."""
    p = record["params"]
    text = f"{MODEL_NAMES.get(p['model'], p['model'])}, λ = {p['l1']:g}"
    if not p["dp"]:
        return f"{text}, no DP"
    if p.get("target_epsilon") is not None:
        text += f", DP-SGD calibrated to ε = {p['target_epsilon']:g} (rdp)"
    elif p.get("noise_multiplier") is not None:
        text += f", DP-SGD with noise multiplier {p['noise_multiplier']:g}"
    return f"{text}; ε = {_epsilon(record):.3g} under the paper's accountant (rdp-classic)"


def _read_notebook(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _write_notebook(notebook: dict, destination: Path) -> None:
    destination.write_text(
        json.dumps(
            chapters.tag_for_book(chapters.without_startup_noise(notebook)),
            indent=1,
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )


def copy_for_book(source: Path, destination: Path, note: str | None = None) -> None:
    """Copy an executed notebook in its source's current prose and tags (outputs untouched),
    with `note` (markdown) after its front if given."""
    stage = source.stem
    executed = _read_notebook(source)
    origin = paths.notebooks_dir() / f"{stage}.ipynb"
    if origin.exists():
        executed = chapters.redress(executed, _read_notebook(origin))
    _write_notebook(executed if note is None else chapters.with_note(executed, note), destination)


def _dressed(store: ProfileStore, rid: str, stage: str) -> dict:
    executed = _read_notebook(store.run_dir(rid) / f"{stage}.ipynb")
    return chapters.redress(executed, _read_notebook(paths.notebooks_dir() / f"{stage}.ipynb"))


def write_run_chapter(
    store: ProfileStore,
    stage: str,
    baseline: str,
    dp: str | None,
    destination: Path,
    summary: pd.DataFrame | None = None,
) -> None:
    """The stage's page: the baseline run's executed notebook with the DP run's beside it.

    The page opens with the provenance of the runs it shows, from `summary` (the profile's;
    by default its `checked_summary`).
    """
    base_record = store.load_record(baseline)
    shown = f"Run `{baseline}`: {describe_run(base_record)}. "
    provenance = "The cell below holds the parameters papermill gave it."
    if base_record["params"]["dp"]:
        baseline_heading = (
            f"## The run shown\n\n{shown}This profile has no run without DP. {provenance}"
        )
    else:
        baseline_heading = f"## Without DP: the baseline\n\n{shown}{provenance}"
    if dp is None:
        dp_heading = (
            "## With DP-SGD\n\n"
            f"The profile **{store.root.name}** has no DP run, so this page shows the "
            "baseline only."
            if not base_record["params"]["dp"]
            else None
        )
    else:
        dp_record = store.load_record(dp)
        same = (dp_record["params"]["model"], dp_record["params"]["l1"]) == (
            base_record["params"]["model"],
            base_record["params"]["l1"],
        )
        dp_heading = (
            f"## With DP-SGD\n\nRun `{dp}`: {describe_run(dp_record)}. "
            + (
                "The same model and λ as the baseline: of the profile's DP runs of them, the "
                f"one whose ε is closest to the paper's ε = {SHOWN_EPSILON:g}. "
                if same
                else "The profile has no DP run of the baseline's model and λ, so this is "
                "another configuration. "
            )
            + provenance
        )
    page = chapters.beside(
        _dressed(store, baseline, stage),
        None if dp is None else _dressed(store, dp, stage),
        baseline_heading,
        dp_heading,
    )
    summary = checked_summary(store) if summary is None else summary
    shown_runs = summary[summary["run_id"].astype(str).isin({baseline, dp} - {None})]
    note = provenance_note(shown_runs, profile=store.root.name)
    _write_notebook(chapters.with_note(page, note), destination)


def profile_store(
    profile: str, results_root: Path | None = None, published: bool = False
) -> ProfileStore:
    """The store the book reads: the results root's, or the published one (under results_root
    if given, else published/)."""
    if published:
        return ProfileStore.for_published(profile, results_root)
    return ProfileStore.for_profile(profile, results_root)


def assemble(
    profile: str,
    results_root: Path | None = None,
    allow_partial: bool = False,
    book_root: Path = paths.REPO_ROOT,
    published: bool = False,
) -> str:
    """Copy the profile's executed notebooks into book/_generated; return the run shown."""
    store = profile_store(profile, results_root, published)
    summary = checked_summary(store)
    gap = summary[summary["status"] != "complete"]
    provenance = provenance_note(summary, profile=profile)
    if len(gap) and not allow_partial:
        labels = ", ".join(gap["label"].astype(str).head(5))
        raise BookError(
            f"{len(gap)} run(s) of profile '{profile}' are missing or failed ({labels}...): "
            "rerun `python -m dpmia_utils run` or pass --allow-partial to show the gap in the book"
        )
    rid = representative_run(store)
    dp = dp_companion(store, rid)
    for shown_run in {rid, dp} - {None}:
        for stage, _ in RUN_STAGES:
            if not (store.run_dir(shown_run) / f"{stage}.ipynb").exists():
                raise BookError(
                    f"{store.run_dir(shown_run)} lacks {stage}.ipynb, which the book shows: "
                    f"publish the profile again (python -m dpmia_utils publish {profile})"
                )
    target = book_root / GENERATED
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for stage in PROFILE_STAGES:
        source = store.stages_dir / f"{stage}.ipynb"
        if not source.exists():
            raise BookError(f"{source} is missing: the profile stage '{stage}' did not complete")
        copy_for_book(source, target / source.name, provenance if stage == RESULTS_STAGE else None)
    for stage, _ in RUN_STAGES:
        write_run_chapter(store, stage, rid, dp, target / f"{stage}.ipynb", summary)
    shown = f"run `{rid}` ({describe_run(store.load_record(rid))})"
    if dp is not None:
        shown += f" and, beside it, run `{dp}` ({describe_run(store.load_record(dp))})"
    (target / "profile.md").write_text(
        f"```{{note}}\nThese results come from the **{profile}** profile "
        f"(`parameters/{profile}.yml`)"
        + (
            f", as published with the repository (`published/{profile}/`: the book was built "
            "from these records without training; `make book` recomputes one run as a spot "
            "check)"
            if published
            else ""
        )
        + f". The training and attack chapters show {shown}. "
        "Sentences and numbers in bold on the results pages are pasted from this profile's "
        "results notebook.\n\n"
        + provenance
        + (f"\n{len(gap)} run(s) of this profile are missing or failed.\n" if len(gap) else "")
        + "```\n"
        + (
            "\n**Runs missing from these results** (the figures and tables omit them):\n\n"
            + gap_markdown(gap)
            if len(gap)
            else ""
        )
    )
    (target / "cost.md").write_text(cost_page_markdown(profile, summary))
    write_table1_page(target / "table1.md")
    write_search_cost_page(target / "cnn_search.md")
    bias = selection_bias_markdown(selection_bias_frame(store, summary))
    (target / "selection_bias.md").write_text(bias, encoding="utf-8")
    write_epsilon_page(target / "epsilon_table.md")
    return rid


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
    published: bool = False,
) -> BuildResult:
    """Assemble and build the HTML book; strict mode turns every Sphinx warning into an error.

    `published` builds from the published results (under `results_root` if given, else
    published/) instead of the results store. `book_root` builds a copy of the book elsewhere
    (the tests do), leaving the repository's own `_build/` untouched.
    """
    if book_root is None:
        book_root = paths.REPO_ROOT
    elif Path(book_root).resolve() != paths.REPO_ROOT:
        copy_book_sources(Path(book_root))
    rid = assemble(profile, results_root, allow_partial, Path(book_root), published)
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

"""Publishing a profile's results with the repository, small: published/<profile>/.

Every complete run's record and parameters, the summary, and the executed notebooks of the
profile stages and of the runs the book shows; no weights. Publishing again keeps the runs
published before that the results store has not recomputed (a long grid is published as it
goes, session by session, and `run` does not redo them unless --recompute-published). A book is then
built from them without training (``book.build_book(..., published=True)``), and
``spotcheck`` recomputes one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from pathlib import Path

import pandas as pd

from .. import paths
from ..pipeline.codeversion import PROFILE_STAGES, RUN_STAGES
from ..pipeline.store import ProfileStore, swap_in
from .book import (
    RESULTS_STAGE,
    BookError,
    NotebooksAt,
    dp_companion,
    has_run_notebooks,
    representative_run,
)


def shown_runs(store: ProfileStore, notebooks_at: NotebooksAt | None = None) -> list[str]:
    """The runs whose notebooks the book shows (the representative run and its DP companion);
    none when the store has no valid complete run. `notebooks_at` says where a run's
    notebooks are at hand (default: in the store)."""
    try:
        rid = representative_run(store, notebooks_at)
    except BookError:
        return []
    return [r for r in (rid, dp_companion(store, rid, notebooks_at)) if r is not None]


def published_versions(profile: str) -> dict[str, int]:
    """How many complete runs of each code version the published profile holds (none: {})."""
    store = ProfileStore.for_published(profile)
    if not store.summary_path.exists():
        return {}
    summary = pd.read_csv(store.summary_path)
    complete = summary[summary["status"] == "complete"]
    if "code_version" not in complete:
        return {"unrecorded": len(complete)} if len(complete) else {}
    return {str(k): int(v) for k, v in complete["code_version"].value_counts().items()}


def _versions_text(versions: dict[str, int]) -> str:
    if not versions:
        return "no runs"
    return ", ".join(f"{n} run(s) of code {v}" for v, n in sorted(versions.items()))


def publication_change(before: dict[str, int], after: dict[str, int]) -> str:
    """One line: what a publication replaced (e.g. 22 runs of an older code by 3 of the current)."""
    if before == after:
        return f"{_versions_text(after)}, as before"
    return f"{_versions_text(after)}, replacing {_versions_text(before)}"


def merged_summary(source: pd.DataFrame, previous: pd.DataFrame | None) -> pd.DataFrame:
    """The summary to publish: the source's rows, except that a configuration the source has
    not completed keeps its previously published complete row (matched by label), if any.

    So a grid computed across several sessions, each publishing what it finished, loses
    nothing, and a partial recomputation does not drop the older runs it has not reached yet
    (the book flags those of an older code version).
    """
    if previous is None or previous.empty or "label" not in previous:
        return source.copy()
    kept = previous[previous["status"] == "complete"].drop_duplicates("label").set_index("label")
    rows = []
    for _, row in source.iterrows():
        if row["status"] != "complete" and row["label"] in kept.index:
            row = kept.loc[row["label"]].copy()
            row["label"] = row.name
        rows.append(row)
    merged = pd.DataFrame(rows).reset_index(drop=True)
    return merged[list(source.columns) + [c for c in merged.columns if c not in source.columns]]


def _complete_ids(summary: pd.DataFrame) -> set[str]:
    return set(summary.loc[summary["status"] == "complete", "run_id"].astype(str))


def publish_profile(profile: str, results_root: Path | None = None) -> Path:
    """Copy a profile's results, small, into published/: the summary, every complete run's
    record and parameters, the executed notebooks of the profile stages and of the runs the
    book shows (`shown_runs`), and no weights.

    Runs published before and not recomputed since stay (`merged_summary`); the curve-fitting
    notebook is then executed again on the merged summary, so the results page shows them.
    """
    source = ProfileStore.for_profile(profile, results_root)
    if not source.summary_path.exists():
        raise BookError(f"{source.summary_path} does not exist: run the profile first")
    target = ProfileStore.for_published(profile)
    before = pd.read_csv(target.summary_path) if target.summary_path.exists() else None
    computed = pd.read_csv(source.summary_path)
    summary = merged_summary(computed, before)
    kept = _complete_ids(summary) - _complete_ids(computed)  # rows of the earlier publication

    staging = ProfileStore(
        target.root.parent / f".staging-{profile}-{uuid.uuid4().hex[:6]}", published=True
    )
    staging.runs_dir.mkdir(parents=True)
    try:
        summary.to_csv(staging.summary_path, index=False)

        def origin(rid: str) -> ProfileStore:  # where the run's files are now
            return target if rid in kept else source

        for rid in sorted(_complete_ids(summary)):
            (staging.runs_dir / rid).mkdir()
            for name in ("record.json", "params.json"):
                shutil.copy2(origin(rid).run_dir(rid) / name, staging.run_dir(rid) / name)
        for rid in shown_runs(staging, lambda r: has_run_notebooks(origin(r), r)):
            for stage, _ in RUN_STAGES:
                shutil.copy2(origin(rid).run_dir(rid) / f"{stage}.ipynb", staging.run_dir(rid))
        for stage in PROFILE_STAGES:
            for store in (source, target):
                notebook = store.stages_dir / f"{stage}.ipynb"
                if notebook.exists():
                    staging.stages_dir.mkdir(exist_ok=True)
                    shutil.copy2(notebook, staging.stages_dir)
                    break
        _replace(target.root, staging.root)
    finally:
        shutil.rmtree(staging.root, ignore_errors=True)
    if kept:  # in place: the notebook names the folder it read
        _refit_curves(profile, target)
    return target.root


def refit_published(profile: str) -> Path:
    """Execute the published profile's results notebook again on its published summary, in
    place: for a change to the notebook or to what it draws with (publish/), which reruns no
    run. Needs no results store."""
    target = ProfileStore.for_published(profile)
    if not target.summary_path.exists():
        raise BookError(f"{target.summary_path} does not exist: publish the profile first")
    _refit_curves(profile, target)
    return target.root


def _refit_curves(profile: str, store: ProfileStore) -> None:
    """Execute the curve-fitting notebook again on a merged published summary."""
    from ..pipeline.execute import run_profile_stage
    from ..pipeline.profiles import load_profile

    messages: list[str] = []
    ok = run_profile_stage(
        RESULTS_STAGE,
        load_profile(paths.parameters_dir() / f"{profile}.yml"),
        store,
        None,
        messages.append,
        hashlib.sha256(store.summary_path.read_bytes()).hexdigest(),
    )
    if not ok:
        raise BookError(
            f"{RESULTS_STAGE} failed on the merged summary, so {store.stages_dir} shows the "
            f"results store's curves: {' '.join(messages)}"
        )
    for leftover in (f"{RESULTS_STAGE}.key", f"{RESULTS_STAGE}.stderr.log"):
        (store.stages_dir / leftover).unlink(missing_ok=True)


def _replace(final: Path, staging: Path) -> None:
    """Put the staged folder in place of the published one (a reader never sees half)."""
    if final.exists():
        swap_in(staging, final, final.parent / f".trash-{final.name}-{uuid.uuid4().hex[:6]}")
    else:
        os.rename(staging, final)

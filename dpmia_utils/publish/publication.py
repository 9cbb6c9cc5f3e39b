"""Publishing a profile's results with the repository, small: published/<profile>/.

Every complete run's record and parameters, the summary, and the executed notebooks of the
profile stages and of the runs the book shows; no weights. A book is then built from them
without training (``book.build_book(..., published=True)``), and ``spotcheck`` recomputes one.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from ..pipeline.codeversion import PROFILE_STAGES, RUN_STAGES
from ..pipeline.store import ProfileStore
from .book import BookError, dp_companion, representative_run


def shown_runs(store: ProfileStore) -> list[str]:
    """The runs whose notebooks the book shows (the representative run and its DP companion);
    none when the store has no valid complete run."""
    try:
        rid = representative_run(store)
    except BookError:
        return []
    return [r for r in (rid, dp_companion(store, rid)) if r is not None]


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


def publish_profile(profile: str, results_root: Path | None = None) -> Path:
    """Copy a profile's results, small, into published/: the summary, every complete run's
    record and parameters, the executed notebooks of the profile stages and of the runs the
    book shows (`shown_runs`), and no weights."""
    source = ProfileStore.for_profile(profile, results_root)
    if not source.summary_path.exists():
        raise BookError(f"{source.summary_path} does not exist: run the profile first")
    target = ProfileStore.for_published(profile)
    if target.root.exists():
        shutil.rmtree(target.root)
    target.runs_dir.mkdir(parents=True)
    shutil.copy2(source.summary_path, target.summary_path)
    summary = pd.read_csv(source.summary_path)
    for rid in summary.loc[summary["status"] == "complete", "run_id"].astype(str):
        (target.runs_dir / rid).mkdir()
        for name in ("record.json", "params.json"):
            shutil.copy2(source.run_dir(rid) / name, target.run_dir(rid) / name)
    for rid in shown_runs(source):
        for stage, _ in RUN_STAGES:
            shutil.copy2(source.run_dir(rid) / f"{stage}.ipynb", target.run_dir(rid))
    for stage in PROFILE_STAGES:
        notebook = source.stages_dir / f"{stage}.ipynb"
        if notebook.exists():
            target.stages_dir.mkdir(exist_ok=True)
            shutil.copy2(notebook, target.stages_dir)
    return target.root

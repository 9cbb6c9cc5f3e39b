"""Run a grid profile: plan it against the store, execute what is missing, summarise.

`run_grid` checks the profile and its data before touching the results store, expands the
profile into runs named by `profiles.run_id`, skips runs already complete in the store
(resume), executes the rest on Dask (cluster.py; a LocalCluster by default, or an existing
scheduler), records failures with their cell and exception while the rest go on, and finally
writes the summary table and executes the once-per-profile notebooks.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..jsonio import atomic_write_json
from ..stages.params import GridError
from .cluster import run_tasks
from .codeversion import code_version, package_versions
from .estimate import (
    cost_tables,
    estimate_run_seconds,
    run_threads,
    shared_prefix_epochs,
    wall_seconds,
)
from .execute import STDERR_LOG, RunTask, run_profile_stage
from .plan import DONE_STATUSES, PlannedRun, check_profile_data, is_published, plan_runs
from .profiles import Profile, load_profile
from .store import ProfileStore
from .summary import write_summary


@dataclass
class GridReport:
    """What a call of `run_grid` did."""

    profile: str
    planned: list[PlannedRun]
    executed: list[str] = field(default_factory=list)
    failed: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)  # complete-looking runs that did not validate
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


def run_grid(
    profile_path: str | Path,
    *,
    results_root: Path | None = None,
    force: bool = False,
    dry_run: bool = False,
    scheduler: str | None = None,
    n_workers: int = 1,
    progress: bool = True,
    kernel_name: str | None = None,
    summarize: bool = True,
    groups: Sequence[str] = (),
    where: dict[str, Any] | None = None,
    skip_published: bool = False,
    out: Callable[[str], None] = print,
) -> GridReport:
    """Execute every incomplete run of a profile, then summarise and fit curves.

    ``groups`` (names from the profile) limits execution to those groups' runs, and ``where``
    (run parameter -> value) to the runs with those values (e.g. a fixed quarter of a grid);
    the summary still lists every run, so the others show as missing until they are computed.
    ``skip_published`` (the command line's default) leaves out the runs published with the
    repository under the same ID (a long grid computed across sessions, each publishing what
    it finished; a fresh clone of the paper grid has nothing left to run); without it they
    are recomputed, and ``compare`` says whether the recomputation differs.

    A malformed profile (GridError) or unreadable data (ProfileDataError, a GridError) is
    raised before anything in the results store is created or changed.
    """
    from tqdm import tqdm

    started = time.time()
    try:
        profile = load_profile(profile_path)
    except GridError as exc:  # one line on the command line, even for a YAML parser's message
        raise GridError(" ".join(str(exc).split())) from None
    store = ProfileStore.for_profile(profile.name, results_root)
    checksum = check_profile_data(profile, load=not dry_run)
    version = code_version()
    published = ProfileStore.for_published(profile.name) if skip_published else None
    planned = plan_runs(profile, store, checksum, version, force=force, published=published)
    report = GridReport(profile=profile.name, planned=planned)
    chosen = {id(spec) for spec in profile.matching(where, groups)}
    todo = [p for p in planned if p.status not in DONE_STATUSES and id(p.spec) in chosen]
    report.skipped = [p.run_id for p in planned if p.status in DONE_STATUSES]

    costs = cost_tables(store, version)
    if not dry_run and not todo and not any(p.status == "complete" for p in planned):
        out(_nothing_left(planned))  # no summary or curves of an empty store
        return report
    if dry_run:
        _print_plan(profile, planned, {p.run_id for p in todo}, costs, n_workers, out)
        if not skip_published:
            _print_published(profile, planned, out)
        return report

    todo = _runner_order(todo, profile, costs)
    store.runs_dir.mkdir(parents=True, exist_ok=True)
    store.clean_stale_partials()
    for p in todo:
        if p.status == "invalid":
            out(f"redoing {p.run_id} ({p.spec.label}): {p.reason}")
            report.invalid.append(p.run_id)
            store.discard(p.run_id)
    shared = profile.shared_parameters()
    checkpoint_epochs = tuple(sorted({int(p.spec.params["epochs"]) for p in planned}))
    provenance = {
        "data_checksum": checksum,
        "code_version": version,
        "python": sys.version.split()[0],
        "packages": package_versions(),
    }

    stage_ok = run_profile_stage(
        "01_data_prep", profile, store, kernel_name, out, checksum, {"data_checksum": checksum}
    )
    if not stage_ok:
        report.failed["01_data_prep"] = {"stage": "01_data_prep"}
    elif todo:
        bar = tqdm(
            total=len(report.skipped) + len(todo),
            initial=len(report.skipped),
            disable=not progress,
            desc=f"{profile.name} runs",
            unit="run",
        )

        def on_done(result: dict[str, Any]) -> None:
            bar.update(1)
            rid = result["run_id"]
            if result.get("lost") and store.is_complete(rid):
                result = {"run_id": rid, "ok": True}  # it published before the worker died
            if result.get("ok"):
                report.executed.append(rid)
                return
            if result.get("lost"):  # the worker could not record its own failure
                atomic_write_json(store.failure_path(rid), result)
            report.failed[rid] = result
            where = f"{result['stage']}" if result.get("stage") else "a worker that died"
            cell = f" cell {result['cell_index']}" if "cell_index" in result else ""
            log = store.failed_dir / rid / STDERR_LOG
            bar.write(
                f"run {rid} ({result.get('label')}) failed in {where}{cell}: "
                f"{result.get('exception')}: {result.get('message', '')[:300]}"
                + (f"\n  its notebooks and stderr: {log.parent}" if log.exists() else "")
            )

        run_tasks(
            todo,
            lambda p: (
                RunTask(
                    p.spec,
                    p.run_id,
                    shared,
                    str(store.root),
                    provenance,
                    kernel_name,
                    force,
                    checkpoint_epochs,
                ),
            ),
            scheduler,
            n_workers,
            on_done,
        )
        bar.close()

    if summarize and stage_ok:
        # Planned again: what is complete now, by the same rules that decided what to run.
        write_summary(profile, store, plan_runs(profile, store, checksum, version))
        summary_digest = hashlib.sha256(store.summary_path.read_bytes()).hexdigest()
        stamp = {"data_checksum": checksum, "summary_sha256": summary_digest}
        if not run_profile_stage(
            "04_curve_fitting", profile, store, kernel_name, out, summary_digest, stamp
        ):
            report.failed["04_curve_fitting"] = {"stage": "04_curve_fitting"}
    report.seconds = time.time() - started
    out(
        f"{profile.name}: {len(report.executed)} executed, {len(report.skipped)} already "
        f"complete, {len(report.failed)} failed, in {report.seconds / 60:.1f} min; "
        f"results in {store.root}"
    )
    return report


def _runner_order(
    runs: list[PlannedRun],
    profile: Profile,
    costs: tuple[dict[tuple[str, bool], float], dict[str, float]],
) -> list[PlannedRun]:
    """Longest runs first (the CNN's): the short Lasso runs then fill the gaps at the end
    instead of leaving one worker idle behind a late long run. Unshared estimates, so a run
    goes before the shorter siblings that read their trainings off its saved prefixes."""
    return sorted(
        runs,
        key=lambda p: -estimate_run_seconds(
            p.spec.params, profile.blocks, costs[0], eval_costs=costs[1]
        ),
    )


def _print_plan(
    profile: Profile,
    planned: list[PlannedRun],
    todo: set[str],
    costs: tuple[dict[tuple[str, bool], float], dict[str, float]],
    n_workers: int,
    out: Callable[[str], None],
) -> None:
    """`run --dry-run`: every run with its state and estimated time, and the total to execute.

    Runs that share training prefixes (same settings, other epochs) are charged their
    longest trajectory once, and nothing that a complete sibling already trained
    (estimate.shared_prefix_epochs).
    """
    total, charged, cores = 0.0, {}, os.cpu_count() or 1
    published = sum(p.status == "published" for p in planned)
    out(
        f"profile {profile.name}: {len(planned)} runs, {len(todo)} to execute"
        + (f" ({published} published with the repository, not redone)" if published else "")
    )
    shared = shared_prefix_epochs(
        [p.spec.params for p in planned], [p.status == "complete" for p in planned]
    )
    for p, shared_epochs in zip(planned, shared, strict=True):
        seconds = estimate_run_seconds(
            p.spec.params, profile.blocks, costs[0], shared_epochs, eval_costs=costs[1]
        )
        if p.run_id in todo:
            total += seconds
            charged[p.run_id] = seconds
        state = p.status if p.run_id in todo or p.status in DONE_STATUSES else "not asked"
        note = f" ({p.reason})" if p.reason else ""
        out(f"  {p.run_id}  {state:9s} ~{seconds / 60:6.1f} min  {p.spec.label}{note}")
    # In the runner's order, each run charged its shared time.
    queued = _runner_order([p for p in planned if p.run_id in todo], profile, costs)
    wall = wall_seconds(
        [(charged[p.run_id], run_threads(p.spec.params, cores)) for p in queued], n_workers, cores
    )
    if not todo:
        out(_nothing_left(planned))
        return
    out(
        f"estimated time for the {len(todo)} runs to execute: {total / 3600:.2f} h of runs, "
        f"{wall / 3600:.2f} h of wall time with {n_workers} worker(s) on {cores} cores "
        "(estimate from measured per-epoch costs; a CNN run takes every core, a Lasso run one)"
    )


def _nothing_left(planned: list[PlannedRun]) -> str:
    """What `run` says when every run is complete or published."""
    published = sum(p.status == "published" for p in planned)
    if not published:
        return "nothing is left to run"
    return (
        f"nothing is left to run: the {published} runs not complete in this store are "
        "published with the repository at this code version (`make book` builds from them; "
        "--recompute-published recomputes them for `compare`)"
    )


def _print_published(
    profile: Profile,
    planned: list[PlannedRun],
    out: Callable[[str], None],
) -> None:
    """`run --dry-run --recompute-published`: what the repository's publication already holds
    at this code version, so the 84 runs to go are known to be a recomputation."""
    published = ProfileStore.for_published(profile.name)
    if not published.summary_path.exists():
        return
    undone = [p for p in planned if p.status not in DONE_STATUSES]
    n_published = sum(is_published(published, p.run_id, p.spec.params) for p in undone)
    left = len(undone) - n_published
    if not n_published:
        return
    if not left:
        out(
            f"all {n_published} runs to execute are published with the repository at this code "
            "version: this recomputes them, and `compare` then checks them against the "
            "publication (without --recompute-published nothing is left to run)"
        )
    else:
        out(
            f"{n_published} of the {len(planned)} runs are published with the repository at "
            f"this code version (without --recompute-published, {left} to execute)"
        )

"""Run a grid profile: each run is a papermill execution of the stage notebooks, on Dask.

`run_grid` expands a profile into runs named by `grid.run_id`, skips runs already complete
in the store (resume), executes the rest on a Dask cluster (a LocalCluster by default, or an
existing scheduler), records failures with their cell and exception while the rest go on,
and finally writes the summary table and executes the once-per-profile notebooks.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import paths
from .grid import Profile, RunSpec, load_profile, run_id
from .store import (
    RECORD_SCHEMA_VERSION,
    ProfileStore,
    RecordError,
    atomic_write_json,
    read_json,
    validate_executed_notebook,
)

#: Stage notebooks executed for every run, in order; each writes one JSON output.
RUN_STAGES: tuple[tuple[str, str], ...] = (
    ("02_target_training", "target.json"),
    ("03_membership_inference", "attack.json"),
)
#: Stage notebooks executed once per profile: data preparation first, curve fitting last.
PROFILE_STAGES: tuple[str, ...] = ("01_data_prep", "04_curve_fitting")


def _notebook_code(path: Path) -> str:
    """The code cells of a notebook: what changes its behaviour (outputs and metadata do not)."""
    nb = json.loads(path.read_text())
    return "\n".join(
        "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        for cell in nb["cells"]
        if cell["cell_type"] == "code"
    )


def code_version(notebooks: tuple[str, ...] = tuple(s for s, _ in RUN_STAGES)) -> str:
    """Hash of the package sources and the given stage notebooks' code cells."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent
    for source in sorted(package.rglob("*.py")):
        digest.update(source.relative_to(package).as_posix().encode())
        digest.update(source.read_bytes())
    for stage in notebooks:
        digest.update(stage.encode())
        digest.update(_notebook_code(paths.notebooks_dir() / f"{stage}.ipynb").encode())
    return digest.hexdigest()[:16]


@dataclass
class PlannedRun:
    """A run of the grid with its ID and its state in the store."""

    spec: RunSpec
    run_id: str
    status: str  # "complete", "pending", "failed" (recorded failure), "invalid" (bad record)
    reason: str = ""


@dataclass
class GridReport:
    """What a call of `run_grid` did."""

    profile: str
    planned: list[PlannedRun]
    executed: list[str] = field(default_factory=list)
    failed: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


def plan_runs(
    profile: Profile, store: ProfileStore, data_checksum: str, version: str, force: bool = False
) -> list[PlannedRun]:
    """Name every run of the profile and say whether the store already holds it complete."""
    shared = {k: v for k, v in profile.shared_parameters().items() if k != "profile"}
    planned = []
    for spec in profile.runs:
        rid = run_id(spec.params, shared, data_checksum, version)
        status, reason = "pending", ""
        if store.run_dir(rid).exists():
            try:
                store.load_record(rid)
                status = "complete"
            except RecordError as exc:
                status, reason = "invalid", str(exc)
        elif store.failure_path(rid).exists():
            status, reason = "failed", "failed before; retried"
        if force and status == "complete":
            status = "pending"
        planned.append(PlannedRun(spec=spec, run_id=rid, status=status, reason=reason))
    return planned


def execute_run(
    spec: RunSpec,
    rid: str,
    shared: dict[str, Any],
    store_root: str,
    provenance: dict[str, Any],
    kernel_name: str | None = None,
) -> dict[str, Any]:
    """Execute one run's stage notebooks into a private folder, then publish it atomically.

    Returns {"run_id", "ok", "seconds"} and, on failure, the stage, cell and exception; a
    failure is also written to the store's failed/ folder. Runs on a Dask worker.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    store = ProfileStore(Path(store_root))
    partial = store.new_partial_dir(rid)
    started = time.time()
    stage = None
    try:
        atomic_write_json(partial / "params.json", {"group": spec.group, "params": spec.params})
        outputs: dict[str, Any] = {}
        notebooks = []
        for stage, output_name in RUN_STAGES:
            executed = partial / f"{stage}.ipynb"
            papermill.execute_notebook(
                str(paths.notebooks_dir() / f"{stage}.ipynb"),
                str(executed),
                parameters={**shared, "run": spec.params, "run_dir": str(partial)},
                kernel_name=kernel_name,
                progress_bar=False,
                cwd=str(partial),
            )
            validate_executed_notebook(executed)
            outputs[output_name] = read_json(partial / output_name)
            notebooks.append(executed.name)
        record = {
            "schema_version": RECORD_SCHEMA_VERSION,
            "run_id": rid,
            "profile": shared["profile"],
            "group": spec.group,
            "params": spec.params,
            "target": outputs["target.json"],
            "attack": outputs["attack.json"],
            "notebooks": notebooks,
            "provenance": {
                **provenance,
                "finished": datetime.now(UTC).isoformat(timespec="seconds"),
                "seconds": round(time.time() - started, 2),
                "host": platform.node(),
            },
        }
        atomic_write_json(partial / "record.json", record)
        store.publish(partial, rid)
        return {"run_id": rid, "ok": True, "seconds": time.time() - started}
    except Exception as exc:  # one failing run must not stop the grid
        failure: dict[str, Any] = {
            "run_id": rid,
            "ok": False,
            "label": spec.label,
            "group": spec.group,
            "params": spec.params,
            "stage": stage,
            "exception": type(exc).__name__,
            "message": str(exc)[-2000:],
            "seconds": time.time() - started,
        }
        if isinstance(exc, PapermillExecutionError):
            failure.update(cell_index=exc.cell_index, exception=exc.ename, message=exc.evalue)
        else:
            failure["traceback"] = traceback.format_exc()[-4000:]
        atomic_write_json(store.failure_path(rid), failure)
        _keep_failed_notebooks(partial, store, rid)
        return failure


def _keep_failed_notebooks(partial: Path, store: ProfileStore, rid: str) -> None:
    """Keep a failed run's executed notebooks next to its failure record, for debugging."""
    import shutil

    keep = store.failed_dir / rid
    shutil.rmtree(keep, ignore_errors=True)
    keep.mkdir(parents=True, exist_ok=True)
    for notebook in partial.glob("*.ipynb"):
        shutil.copy2(notebook, keep / notebook.name)
    shutil.rmtree(partial, ignore_errors=True)


def _run_tasks(
    tasks: list[PlannedRun],
    submit_args: Callable[[PlannedRun], tuple],
    scheduler: str | None,
    n_workers: int,
    on_done: Callable[[dict[str, Any]], None],
) -> None:
    """Execute tasks on Dask, calling on_done with each result as it completes."""
    from dask.distributed import Client, LocalCluster, as_completed

    if scheduler:
        client = Client(scheduler)
        cluster = None
    else:
        threads = max(1, (os.cpu_count() or 1) // n_workers)
        # Each worker gets its share of cores for TensorFlow; papermill kernels inherit it.
        os.environ.setdefault("DPMIA_TF_THREADS", str(threads))
        cluster = LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            memory_limit=0,
        )
        client = Client(cluster)
    try:
        futures = [client.submit(execute_run, *submit_args(t), pure=False) for t in tasks]
        for future in as_completed(futures):
            try:
                result = future.result()
            except Exception as exc:  # a worker died: the task is lost, not the grid
                result = {
                    "run_id": None,
                    "ok": False,
                    "exception": type(exc).__name__,
                    "message": str(exc),
                }
            on_done(result)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def data_checksum_for(profile: Profile) -> str:
    """The checksum of the data a profile uses (raw archives, or the synthetic recipe)."""
    from .study import data_fingerprint

    return data_fingerprint(profile.blocks["data"])


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
    out: Callable[[str], None] = print,
) -> GridReport:
    """Execute every incomplete run of a profile, then summarise and fit curves."""
    from tqdm import tqdm

    started = time.time()
    profile = load_profile(profile_path)
    store = ProfileStore.for_profile(profile.name, results_root)
    checksum = data_checksum_for(profile)
    version = code_version()
    planned = plan_runs(profile, store, checksum, version, force=force)
    report = GridReport(profile=profile.name, planned=planned)
    todo = [p for p in planned if p.status != "complete"]
    report.skipped = [p.run_id for p in planned if p.status == "complete"]

    if dry_run:
        from .estimate import cost_table, estimate_run_seconds

        costs = cost_table(store)
        total = 0.0
        out(f"profile {profile.name}: {len(planned)} runs, {len(todo)} to execute")
        for p in planned:
            seconds = estimate_run_seconds(p.spec.params, profile.blocks, costs)
            total += seconds if p.status != "complete" else 0.0
            note = f" ({p.reason})" if p.reason else ""
            out(f"  {p.run_id}  {p.status:8s} ~{seconds / 60:6.1f} min  {p.spec.label}{note}")
        out(
            f"estimated time for the {len(todo)} runs to execute: {total / 3600:.2f} h "
            f"on this machine ({n_workers} worker(s); estimate from measured per-epoch costs)"
        )
        return report

    store.runs_dir.mkdir(parents=True, exist_ok=True)
    store.clean_stale_partials()
    for p in todo:
        if p.status == "invalid":
            out(f"redoing {p.run_id} ({p.spec.label}): {p.reason}")
            store.discard(p.run_id)
    shared = profile.shared_parameters()
    provenance = {
        "data_checksum": checksum,
        "code_version": version,
        "python": sys.version.split()[0],
    }

    stage_ok = run_profile_stage("01_data_prep", profile, store, kernel_name, out, checksum)
    if not stage_ok:
        report.failed["01_data_prep"] = {"stage": "01_data_prep"}
    elif todo:
        bar = tqdm(
            total=len(planned),
            initial=len(report.skipped),
            disable=not progress,
            desc=f"{profile.name} runs",
            unit="run",
        )

        def on_done(result: dict[str, Any]) -> None:
            bar.update(1)
            if result.get("ok"):
                report.executed.append(result["run_id"])
            else:
                report.failed[result.get("run_id") or f"lost-{len(report.failed)}"] = result
                bar.write(
                    f"run {result.get('run_id')} failed in {result.get('stage')}: "
                    f"{result.get('exception')}: {result.get('message', '')[:300]}"
                )

        _run_tasks(
            todo,
            lambda p: (p.spec, p.run_id, shared, str(store.root), provenance, kernel_name),
            scheduler,
            n_workers,
            on_done,
        )
        bar.close()

    if summarize and stage_ok:
        from .results import write_summary

        write_summary(profile, store, planned)
        summary_digest = hashlib.sha256(store.summary_path.read_bytes()).hexdigest()
        if not run_profile_stage(
            "04_curve_fitting", profile, store, kernel_name, out, summary_digest
        ):
            report.failed["04_curve_fitting"] = {"stage": "04_curve_fitting"}
    report.seconds = time.time() - started
    out(
        f"{profile.name}: {len(report.executed)} executed, {len(report.skipped)} already "
        f"complete, {len(report.failed)} failed, in {report.seconds / 60:.1f} min; "
        f"results in {store.root}"
    )
    return report


def run_profile_stage(
    stage: str,
    profile: Profile,
    store: ProfileStore,
    kernel_name: str | None,
    out: Callable[[str], None] = print,
    inputs: str = "",
) -> bool:
    """Execute a once-per-profile notebook (data prep, curve fitting) into the store.

    Skipped when its executed copy exists and nothing it depends on changed: the profile's
    shared parameters, the package and notebook code, and `inputs` (e.g. the summary table).
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    store.stages_dir.mkdir(parents=True, exist_ok=True)
    final = store.stages_dir / f"{stage}.ipynb"
    key_path = store.stages_dir / f"{stage}.key"
    parameters = {**profile.shared_parameters(), "results_root": str(store.root)}
    key = hashlib.sha256(
        json.dumps([parameters, code_version((stage,)), inputs], sort_keys=True).encode()
    ).hexdigest()
    if final.exists() and key_path.exists() and key_path.read_text() == key:
        try:
            validate_executed_notebook(final)
            return True
        except RecordError:
            pass
    partial = store.stages_dir / f".partial-{stage}-{os.getpid()}.ipynb"
    try:
        papermill.execute_notebook(
            str(paths.notebooks_dir() / f"{stage}.ipynb"),
            str(partial),
            parameters=parameters,
            kernel_name=kernel_name,
            progress_bar=False,
            cwd=str(store.stages_dir),
        )
        os.replace(partial, final)
        key_path.write_text(key)
        return True
    except PapermillExecutionError as exc:
        out(f"{stage} failed at cell {exc.cell_index}: {exc.ename}: {exc.evalue}")
        os.replace(partial, store.stages_dir / f"{stage}.failed.ipynb")
        key_path.unlink(missing_ok=True)
        return False

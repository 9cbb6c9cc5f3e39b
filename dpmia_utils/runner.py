"""Run a grid profile: each run is a papermill execution of the stage notebooks, on Dask.

`run_grid` checks the profile and its data before touching the results store, expands the
profile into runs named by `grid.run_id`, skips runs already complete in the store (resume),
executes the rest on a Dask cluster (a LocalCluster by default, or an existing scheduler),
records failures with their cell and exception while the rest go on (a run whose worker
died is retried once, then recorded as lost), and finally writes the summary table and
executes the once-per-profile notebooks.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import platform
import shutil
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from . import paths
from .grid import GridError, Profile, RunSpec, load_profile, run_id
from .store import (
    RECORD_SCHEMA_VERSION,
    ProfileStore,
    RecordError,
    atomic_write_json,
    atomic_write_text,
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
#: Packages whose versions every record and executed notebook carries.
RECORDED_PACKAGES: tuple[str, ...] = (
    "tensorflow",
    "tensorflow-privacy",
    "dp-accounting",
    "numpy",
    "scipy",
    "pandas",
    "scikit-learn",
    "statsmodels",
    "papermill",
    "distributed",
    "dpmia-utils",
)
#: How many times Dask may start a run again after the worker running it died.
WORKER_DEATH_RETRIES = 1
#: How many times a run starts again after one of its notebook kernels died.
KERNEL_DEATH_RETRIES = 1
PACKAGE = __name__.split(".")[0]


class ProfileDataError(GridError):
    """A profile's data block points at data that cannot be read; the message names the file."""


def _notebook_code(path: Path) -> str:
    """The code cells of a notebook: what changes its behaviour (outputs and metadata do not)."""
    nb = json.loads(path.read_text())
    return "\n".join(
        "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        for cell in nb["cells"]
        if cell["cell_type"] == "code"
    )


def _package_dir() -> Path:
    return Path(__file__).resolve().parent


def _imported_modules(source: str) -> set[str] | None:
    """Names of this package's modules that some code imports, or None if it does not parse."""
    # IPython magics (%matplotlib) and shell escapes are not Python.
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return None
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == PACKAGE and len(parts) > 1:
                    found.add(parts[1])
        elif isinstance(node, ast.ImportFrom):
            parts = (node.module or "").split(".")
            if node.level == 0 and parts[0] == PACKAGE:
                parts = parts[1:]
            elif node.level != 1:
                continue
            parts = [p for p in parts if p]
            if parts:
                found.add(parts[0])
            else:  # `from . import x` / `from dpmia_utils import x`
                found.update(alias.name for alias in node.names)
    return found


def code_modules(notebooks: tuple[str, ...] = tuple(s for s, _ in RUN_STAGES)) -> list[str]:
    """The package modules the given stage notebooks execute: their imports, transitively.

    A module imported inside a function counts too. If some code cannot be parsed, every
    module counts (a run is then redone more often than needed, never less).
    """
    package = _package_dir()
    every = sorted(p.stem for p in package.glob("*.py"))
    todo: set[str] = {"__init__"}
    for stage in notebooks:
        imported = _imported_modules(_notebook_code(paths.notebooks_dir() / f"{stage}.ipynb"))
        if imported is None:
            return every
        todo |= imported
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        path = package / f"{name}.py"
        if name in seen or not path.is_file():
            continue
        seen.add(name)
        imported = _imported_modules(path.read_text())
        if imported is None:
            return every
        todo |= imported
    return sorted(seen)


def code_version(notebooks: tuple[str, ...] = tuple(s for s, _ in RUN_STAGES)) -> str:
    """Hash of the given stage notebooks' code cells and of the package modules they execute.

    Markdown, outputs and metadata of the notebooks do not count, nor do modules the stages
    never import (the CLI, the book builder, this runner): editing those reruns nothing. A
    change to how records are assembled bumps the store's RECORD_SCHEMA_VERSION instead.
    """
    digest = hashlib.sha256()
    package = _package_dir()
    for module in code_modules(notebooks):
        digest.update(f"{module}.py".encode())
        digest.update((package / f"{module}.py").read_bytes())
    for stage in notebooks:
        digest.update(stage.encode())
        digest.update(_notebook_code(paths.notebooks_dir() / f"{stage}.ipynb").encode())
    return digest.hexdigest()[:16]


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that shape a run's numbers (None if absent)."""
    versions: dict[str, str | None] = {}
    for name in RECORDED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def run_seeds(params: dict[str, Any], shared: dict[str, Any]) -> dict[str, int]:
    """Every seed a run depends on: training and attack (the run's), splits, data."""
    return {
        "run": params["seed"],
        "split": shared["split"]["seed"],
        "data": shared["data"]["seed"],
    }


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
    invalid: list[str] = field(default_factory=list)  # complete-looking runs that did not validate
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


def plan_runs(
    profile: Profile, store: ProfileStore, data_checksum: str, version: str, force: bool = False
) -> list[PlannedRun]:
    """Name every run of the profile and say whether the store already holds it complete.

    A run folder counts as complete only if its record validates, names this run, holds
    this run's parameters and lists every stage notebook, each of which papermill finished
    cleanly; otherwise the run is "invalid" (and redone), with the reason.
    """
    shared = {k: v for k, v in profile.shared_parameters().items() if k != "profile"}
    planned = []
    for spec in profile.runs:
        rid = run_id(spec.params, shared, data_checksum, version)
        status, reason = "pending", ""
        if store.run_dir(rid).exists():
            try:
                load_complete_record(store, rid, spec.params)
                status = "complete"
            except RecordError as exc:
                status, reason = "invalid", str(exc)
        elif store.failure_path(rid).exists():
            status, reason = "failed", "failed before; retried"
        if force and status == "complete":
            status = "pending"
        planned.append(PlannedRun(spec=spec, run_id=rid, status=status, reason=reason))
    return planned


def load_complete_record(
    store: ProfileStore, rid: str, params: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The record of a complete run, or RecordError saying why the run is not complete.

    Beyond the store's checks (schema, run ID, listed notebooks finished cleanly), the
    record must list every stage notebook and, when given, hold these parameters.
    """
    record = store.load_record(rid)
    if params is not None and record["params"] != params:
        raise RecordError(f"{store.run_dir(rid)}: record holds other parameters than the run")
    missing = sorted({f"{stage}.ipynb" for stage, _ in RUN_STAGES} - set(record["notebooks"]))
    if missing:
        raise RecordError(f"{store.run_dir(rid)}: record lacks {', '.join(missing)}")
    return record


def stamp_notebook(path: Path, stamp: dict[str, Any]) -> None:
    """Record provenance (versions, data checksum, seeds) in an executed notebook's metadata."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nb.metadata["dpmia"] = stamp
    atomic_write_text(path, nbformat.writes(nb))


def _execute_stages(
    spec: RunSpec,
    rid: str,
    shared: dict[str, Any],
    partial: Path,
    stamp: dict[str, Any],
    kernel_name: str | None,
    progress: dict[str, Any],
) -> None:
    """Execute the run stages into `partial` and write its record last (raises on failure)."""
    import papermill

    started = time.time()
    atomic_write_json(partial / "params.json", {"group": spec.group, "params": spec.params})
    outputs: dict[str, Any] = {}
    notebooks = []
    for stage, output_name in RUN_STAGES:
        progress["stage"] = stage
        executed = partial / f"{stage}.ipynb"
        papermill.execute_notebook(
            str(paths.notebooks_dir() / f"{stage}.ipynb"),
            str(executed),
            parameters={**shared, "run": spec.params, "run_dir": str(partial)},
            kernel_name=kernel_name,
            progress_bar=False,
            cwd=str(partial),
        )
        stamp_notebook(executed, stamp)
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
            **stamp,
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "seconds": round(time.time() - started, 2),
        },
    }
    atomic_write_json(partial / "record.json", record)


#: TensorFlow threads for the kernels of Lasso and of CNN runs, when set (the local cluster
#: sets them: 1 for the Lasso, every core for the CNN).
LASSO_THREADS_ENV_VAR = "DPMIA_LASSO_TF_THREADS"
CNN_THREADS_ENV_VAR = "DPMIA_CNN_TF_THREADS"


def tf_threads_for(params: dict[str, Any]) -> str | None:
    """The TensorFlow thread count a run's kernels should get, or None for the worker's own.

    The local cluster gives the CNN every core and the Lasso one (see `_run_tasks`).
    """
    if params.get("model") == "lasso":
        return os.environ.get(LASSO_THREADS_ENV_VAR) or None
    return os.environ.get(CNN_THREADS_ENV_VAR) or None


def execute_run(
    spec: RunSpec,
    rid: str,
    shared: dict[str, Any],
    store_root: str,
    provenance: dict[str, Any],
    kernel_name: str | None = None,
    replace: bool = False,
) -> dict[str, Any]:
    """Execute one run's stage notebooks into a private folder, then publish it atomically.

    Returns {"run_id", "ok", "seconds"} and, on failure, the stage, cell and exception; a
    failure is also written to the store's failed/ folder. Runs on a Dask worker. A valid
    run already published under `rid` is kept unless `replace`. A run whose kernel died
    (killed, crashed) is started again once, in a fresh folder.
    """
    store = ProfileStore(Path(store_root))
    if not replace and store.is_complete(rid):
        # Dask recomputes a finished task whose result died with its worker: nothing to do.
        return {"run_id": rid, "ok": True, "seconds": 0.0}
    started = time.time()
    threads = tf_threads_for(spec.params)
    if threads:
        # Papermill's kernels inherit this process's environment; a local worker runs one
        # run at a time, so setting it here is the run's own setting.
        os.environ["DPMIA_TF_THREADS"] = threads
    stamp = {
        **provenance,
        "run_id": rid,
        "seeds": run_seeds(spec.params, shared),
        "tf_threads": os.environ.get("DPMIA_TF_THREADS"),
        "host": platform.node(),
    }
    for attempt in range(1, KERNEL_DEATH_RETRIES + 2):
        # A worker that died on this run (Dask then retries it here) left its folder behind.
        store.clean_stale_partials(run_id=rid)
        partial = store.new_partial_dir(rid)
        progress: dict[str, Any] = {"stage": None}
        try:
            stamp["attempt"] = attempt
            _execute_stages(spec, rid, shared, partial, stamp, kernel_name, progress)
            store.publish(partial, rid, replace=replace)
            return {"run_id": rid, "ok": True, "seconds": time.time() - started}
        except Exception as exc:  # one failing run must not stop the grid
            if _kernel_died(exc) and attempt <= KERNEL_DEATH_RETRIES:
                shutil.rmtree(partial, ignore_errors=True)
                continue
            failure = run_failure(spec, rid, exc, progress["stage"])
            failure.update(attempts=attempt, seconds=time.time() - started)
            atomic_write_json(store.failure_path(rid), failure)
            _keep_failed_notebooks(partial, store, rid)
            return failure
    raise AssertionError("unreachable: the last attempt returns")


def _kernel_died(exc: Exception) -> bool:
    """Whether a notebook failed because its kernel process died (not because a cell raised)."""
    from nbclient.exceptions import DeadKernelError

    # jupyter_client reports a kernel that dies while starting as a plain RuntimeError.
    return isinstance(exc, DeadKernelError) or (
        isinstance(exc, RuntimeError) and "Kernel died" in str(exc)
    )


def run_failure(spec: RunSpec, rid: str, exc: Exception, stage: str | None) -> dict[str, Any]:
    """The failure record of a run that raised: where (stage, cell) and what (exception)."""
    from papermill.exceptions import PapermillExecutionError

    failure: dict[str, Any] = {
        "run_id": rid,
        "ok": False,
        "label": spec.label,
        "group": spec.group,
        "params": spec.params,
        "stage": stage,
        "exception": type(exc).__name__,
        "message": str(exc)[-2000:],
        "host": platform.node(),
    }
    if isinstance(exc, PapermillExecutionError):
        # cell_index counts the executed notebook's cells before papermill inserted its
        # error banners; the execution count is the "In [n]" shown in the kept notebook.
        failure.update(
            cell_index=exc.cell_index,
            execution_count=exc.exec_count,
            cell_source=exc.source[:1000],
            exception=exc.ename,
            message=exc.evalue,
        )
    else:
        failure["traceback"] = "".join(traceback.format_exception(exc))[-4000:]
    return failure


def lost_run_failure(planned: PlannedRun, exc: BaseException) -> dict[str, Any]:
    """The failure record of a run whose Dask task was lost (its worker died, or the cluster)."""
    return {
        "run_id": planned.run_id,
        "ok": False,
        "lost": True,
        "label": planned.spec.label,
        "group": planned.spec.group,
        "params": planned.spec.params,
        "stage": None,
        "exception": type(exc).__name__,
        "message": f"worker died while running it (or the cluster was lost): {exc}"[:2000],
    }


def _keep_failed_notebooks(partial: Path, store: ProfileStore, rid: str) -> None:
    """Keep a failed run's executed notebooks next to its failure record, for debugging."""
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
    task: Callable[..., dict[str, Any]] = execute_run,
) -> None:
    """Execute tasks on Dask, calling on_done with each result as it completes.

    On a LocalCluster a task whose worker dies is started again once (the nanny restarts
    the worker); a second death, or a lost scheduler, yields the run's `lost_run_failure`.
    """
    import dask
    from dask.distributed import Client, LocalCluster, as_completed

    if scheduler:
        client = Client(scheduler)
        cluster = None
    else:
        # Every worker's TensorFlow may use all cores: while one run is in its single-threaded
        # parts (kernel start, imports, plots) the other's convolutions get both. Measured on
        # 2 cores, CNN 8x5 DP epoch, effective seconds per epoch: 2 workers x 2 threads 0.92,
        # 2 workers x 1 thread 1.07 (1 worker x 2 threads 0.85, but nothing overlaps there).
        # Papermill kernels inherit the setting.
        cores = str(os.cpu_count() or 1)
        os.environ.setdefault("DPMIA_TF_THREADS", cores)
        os.environ.setdefault(CNN_THREADS_ENV_VAR, os.environ["DPMIA_TF_THREADS"])
        # Except the Lasso: its small ops lose to thread hand-offs (DP Lasso runs took 79-85 s
        # with 2 threads against 62-78 s with one, two workers side by side).
        os.environ.setdefault(LASSO_THREADS_ENV_VAR, "1")
        # One run per worker at a time (no prefetched second run): a worker that dies then
        # takes only its own run with it, not an innocent queued one.
        settings = {
            "distributed.scheduler.allowed-failures": WORKER_DEATH_RETRIES,
            "distributed.scheduler.worker-saturation": 1.0,
        }
        with dask.config.set(settings):
            cluster = LocalCluster(
                n_workers=n_workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",  # any free port: never collide with 8787
                memory_limit=0,
            )
        client = Client(cluster)
    try:
        futures = {
            client.submit(
                task, *submit_args(t), pure=False, key=f"run-{t.run_id}-{uuid.uuid4().hex[:6]}"
            ): t
            for t in tasks
        }
        for future in as_completed(futures):
            try:
                result = future.result()
            except Exception as exc:  # the task is lost, not the grid
                result = lost_run_failure(futures[future], exc)
            on_done(result)
    finally:
        client.close()
        if cluster is not None:
            _close_cluster(cluster)


def _close_cluster(cluster: Any, timeout: float = 10.0) -> None:
    """Close a LocalCluster; if that hangs, kill its worker processes and move on.

    With distributed 2024.12, closing right after a nanny restarted a worker that died can
    wait forever for the new worker to start. Every run has reported back by then.
    """
    import signal

    try:
        cluster.close(timeout=timeout)
    except Exception:  # a TimeoutError, from asyncio or the builtin, depending on the path
        for nanny in list(cluster.workers.values()):
            pid = getattr(nanny, "pid", None)
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def data_checksum_for(profile: Profile) -> str:
    """The checksum of the data a profile uses (raw archives, or the synthetic recipe)."""
    from .study import data_fingerprint

    return data_fingerprint(profile.blocks["data"])


def check_profile_data(profile: Profile, load: bool = True) -> str:
    """Checksum (and, with `load`, read and validate) the profile's data in this process.

    Raises ProfileDataError naming the profile and the data file, so a malformed file stops
    the grid before any worker, kernel or results folder exists.
    """
    from .data import DataError
    from .study import load_dataset

    try:
        checksum = data_checksum_for(profile)
        if load:
            # Parsing the files here also warms the cache the stage notebooks read next.
            load_dataset(profile.blocks["data"], progress=False)
    except (DataError, OSError) as exc:
        message = " ".join(str(exc).split())  # one line, whatever the parser's message
        raise ProfileDataError(f"{profile.path.name}: data: {message}") from None
    return checksum


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
    groups: tuple[str, ...] = (),
    out: Callable[[str], None] = print,
) -> GridReport:
    """Execute every incomplete run of a profile, then summarise and fit curves.

    ``groups`` (names from the profile) limits execution to those groups' runs; the summary
    still lists every run, so the others show as missing until they are computed.

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
    planned = plan_runs(profile, store, checksum, version, force=force)
    report = GridReport(profile=profile.name, planned=planned)
    unknown = sorted(set(groups) - {r.group for r in profile.runs})
    if unknown:
        raise GridError(f"{profile.path.name}: no group(s) named {unknown}")
    todo = [p for p in planned if p.status != "complete" and (not groups or p.spec.group in groups)]
    report.skipped = [p.run_id for p in planned if p.status == "complete"]

    from .estimate import cost_table, estimate_run_seconds

    costs = cost_table(store)
    if dry_run:
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

    # Longest runs first (the CNN's): the short Lasso runs then fill the gaps at the end
    # instead of leaving one worker idle behind a late long run.
    todo.sort(key=lambda p: -estimate_run_seconds(p.spec.params, profile.blocks, costs))
    store.runs_dir.mkdir(parents=True, exist_ok=True)
    store.clean_stale_partials()
    for p in todo:
        if p.status == "invalid":
            out(f"redoing {p.run_id} ({p.spec.label}): {p.reason}")
            report.invalid.append(p.run_id)
            store.discard(p.run_id)
    shared = profile.shared_parameters()
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
            bar.write(
                f"run {rid} ({result.get('label')}) failed in {where}{cell}: "
                f"{result.get('exception')}: {result.get('message', '')[:300]}"
            )

        _run_tasks(
            todo,
            lambda p: (p.spec, p.run_id, shared, str(store.root), provenance, kernel_name, force),
            scheduler,
            n_workers,
            on_done,
        )
        bar.close()

    if summarize and stage_ok:
        from .results import write_summary

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


def profile_stage_key(stage: str, profile: Profile, store: ProfileStore, inputs: str = "") -> str:
    """What a once-per-profile notebook depends on: parameters, its code, and `inputs`."""
    parameters = {**profile.shared_parameters(), "results_root": str(store.root)}
    return hashlib.sha256(
        json.dumps([parameters, code_version((stage,)), inputs], sort_keys=True).encode()
    ).hexdigest()


def run_profile_stage(
    stage: str,
    profile: Profile,
    store: ProfileStore,
    kernel_name: str | None,
    out: Callable[[str], None] = print,
    inputs: str = "",
    stamp: dict[str, Any] | None = None,
) -> bool:
    """Execute a once-per-profile notebook (data prep, curve fitting) into the store.

    Skipped when its executed copy exists and nothing it depends on changed: the profile's
    shared parameters, the package and notebook code, and `inputs` (e.g. the summary table).
    The executed notebook records `stamp`, the code version and the package versions.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    store.stages_dir.mkdir(parents=True, exist_ok=True)
    final = store.stages_dir / f"{stage}.ipynb"
    key_path = store.stages_dir / f"{stage}.key"
    parameters = {**profile.shared_parameters(), "results_root": str(store.root)}
    key = profile_stage_key(stage, profile, store, inputs)
    if final.exists() and key_path.exists() and key_path.read_text() == key:
        try:
            validate_executed_notebook(final)
            return True
        except RecordError:
            pass
    partial = store.new_stage_partial(stage)
    try:
        papermill.execute_notebook(
            str(paths.notebooks_dir() / f"{stage}.ipynb"),
            str(partial),
            parameters=parameters,
            kernel_name=kernel_name,
            progress_bar=False,
            cwd=str(store.stages_dir),
        )
        stamp_notebook(
            partial,
            {
                **(stamp or {}),
                "code_version": code_version((stage,)),
                "packages": package_versions(),
            },
        )
        os.replace(partial, final)
        atomic_write_text(key_path, key)
        return True
    except Exception as exc:  # a failed profile stage is reported, not raised
        if isinstance(exc, PapermillExecutionError):
            out(f"{stage} failed at cell {exc.cell_index}: {exc.ename}: {exc.evalue}")
        else:
            out(f"{stage} failed: {type(exc).__name__}: {exc}")
        if partial.exists():
            os.replace(partial, store.stages_dir / f"{stage}.failed.ipynb")
        key_path.unlink(missing_ok=True)
        return False

"""Execute notebooks into the store: one run's stage notebooks (on a worker), and the
once-per-profile notebooks (data preparation, curve fitting).

A run executes in a private partial folder and is published by one atomic rename once every
stage succeeded and its record is written; a failing run leaves a failure record (stage,
cell, exception) and its executed notebooks under failed/, and the grid goes on.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import resource
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import paths
from ..jsonio import atomic_write_json, atomic_write_text, read_json
from .codeversion import RUN_STAGES, code_version, package_versions, rendering_version
from .profiles import Profile, RunSpec
from .store import RECORD_SCHEMA_VERSION, ProfileStore, RecordError, validate_executed_notebook

#: Where run kernels find the shared training prefixes (read by training.checkpoints, which
#: machinery may not import: the names are repeated here and a test checks they agree).
CHECKPOINT_DIR_ENV_VAR = "DPMIA_CHECKPOINT_DIR"
CHECKPOINT_EPOCHS_ENV_VAR = "DPMIA_CHECKPOINT_EPOCHS"
#: How many times a run starts again after one of its notebook kernels died.
KERNEL_DEATH_RETRIES = 1
#: TensorFlow threads for the kernels of Lasso and of CNN runs, when set (the local cluster
#: sets them: 1 for the Lasso, every core for the CNN).
LASSO_THREADS_ENV_VAR = "DPMIA_LASSO_TF_THREADS"
CNN_THREADS_ENV_VAR = "DPMIA_CNN_TF_THREADS"
#: The local cluster's thread count for a Lasso run (the dry run's wall-time estimate uses it).
LASSO_THREADS = 1


@dataclass(frozen=True)
class RunTask:
    """Everything a worker needs to execute one run (Dask ships it to the worker)."""

    spec: RunSpec
    run_id: str
    shared: dict[str, Any]  # the profile's shared parameters, "profile" name included
    store_root: str
    provenance: dict[str, Any]  # data checksum, code version, Python and package versions
    kernel_name: str | None = None
    replace: bool = False  # publish over a valid run of the same ID (--force)
    # The profile's epoch counts: where a training saves a prefix for runs that stop there.
    checkpoint_epochs: tuple[int, ...] = ()


def run_seeds(params: dict[str, Any], shared: dict[str, Any]) -> dict[str, int]:
    """Every seed a run depends on: training and attack (the run's), splits, data."""
    return {
        "run": params["seed"],
        "split": shared["split"]["seed"],
        "data": shared["data"]["seed"],
    }


def stamp_notebook(path: Path, stamp: dict[str, Any]) -> None:
    """Record provenance (versions, data checksum, seeds) in an executed notebook's metadata."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nb.metadata["dpmia"] = stamp
    atomic_write_text(path, nbformat.writes(nb))


#: Seconds a kernel may take to start answering (papermill's default is 60): on a loaded
#: 2-core machine (two grids and a test suite) starting Python and ipykernel took longer.
KERNEL_START_TIMEOUT = 300

#: Each run's kernels write their stderr (TensorFlow's start-up lines, warnings, C++ errors)
#: here, in the run folder, instead of onto the terminal of the person running the grid.
STDERR_LOG = "stderr.log"


@contextmanager
def _stderr_into(path: Path) -> Iterator[None]:
    """Point this process's stderr (fd 2, which papermill's kernels inherit) at `path`.

    Runs execute on Dask worker processes, one run at a time each, so the redirection is the
    run's own; the grid's progress bar lives in the parent process and stays on the terminal.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(path, "ab") as log:
            os.dup2(log.fileno(), 2)
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _execute_stages(
    task: RunTask, partial: Path, stamp: dict[str, Any], progress: dict[str, Any]
) -> None:
    """Execute the run stages into `partial` and write its record last (raises on failure)."""
    import papermill

    spec = task.spec
    started, cpu_before = time.time(), _children_cpu_seconds()
    atomic_write_json(partial / "params.json", {"group": spec.group, "params": spec.params})
    outputs: dict[str, Any] = {}
    notebooks = []
    for stage, output_name in RUN_STAGES:
        progress["stage"] = stage
        executed = partial / f"{stage}.ipynb"
        with _stderr_into(partial / STDERR_LOG):
            papermill.execute_notebook(
                str(paths.notebooks_dir() / f"{stage}.ipynb"),
                str(executed),
                parameters={**task.shared, "run": spec.params, "run_dir": str(partial)},
                kernel_name=task.kernel_name,
                progress_bar=False,
                start_timeout=KERNEL_START_TIMEOUT,
                cwd=str(partial),
            )
        stamp_notebook(executed, stamp)
        validate_executed_notebook(executed)
        outputs[output_name] = read_json(partial / output_name)
        notebooks.append(executed.name)
    record = {
        "schema_version": RECORD_SCHEMA_VERSION,
        "run_id": task.run_id,
        "profile": task.shared["profile"],
        "group": spec.group,
        "params": spec.params,
        "target": outputs["target.json"],
        "attack": outputs["attack.json"],
        "notebooks": notebooks,
        "provenance": {
            **stamp,
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "seconds": round(time.time() - started, 2),
            # CPU time of the run's kernels, and the machine's load when it finished: over the
            # wall time, the cores the run got (0.88 of 2 for a DP CNN run timed beside another
            # profile), so that a run timed beside others can be told from one timed alone.
            "kernel_cpu_seconds": round(_children_cpu_seconds() - cpu_before, 2),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        },
    }
    atomic_write_json(partial / "record.json", record)


def _children_cpu_seconds() -> float:
    """User and system CPU seconds of this process's finished children (the kernels papermill
    started and waited for: a worker runs one run at a time)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def tf_threads_for(params: dict[str, Any]) -> str | None:
    """The TensorFlow thread count a run's kernels should get, or None for the worker's own.

    The local cluster gives the CNN every core and the Lasso one (see cluster.run_tasks).
    """
    if params.get("model") == "lasso":
        return os.environ.get(LASSO_THREADS_ENV_VAR) or None
    return os.environ.get(CNN_THREADS_ENV_VAR) or None


@contextmanager
def _checkpoint_environment(task: RunTask, store: ProfileStore) -> Iterator[None]:
    """Let the run's kernels share training prefixes with runs differing only in epochs, of
    any profile under the same results root (training.checkpoints), in a folder per code
    version so that no other code's weights are ever read; the worker's own environment is
    restored afterwards."""
    folder = store.checkpoints_dir / str(task.provenance.get("code_version", "unversioned"))
    values = {
        CHECKPOINT_DIR_ENV_VAR: str(folder),
        CHECKPOINT_EPOCHS_ENV_VAR: ",".join(str(e) for e in task.checkpoint_epochs),
    }
    with temporary_environment(values):  # papermill's kernels inherit the environment
        yield


@contextmanager
def temporary_environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of the block, then restore the old ones."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def execute_run(task: RunTask) -> dict[str, Any]:
    """Execute one run's stage notebooks into a private folder, then publish it atomically.

    Returns {"run_id", "ok", "seconds"} and, on failure, the stage, cell and exception; a
    failure is also written to the store's failed/ folder. Runs on a Dask worker. A valid
    run already published under the task's ID is kept unless `task.replace`. A run whose
    kernel died (killed, crashed) is started again once, in a fresh folder.
    """
    rid = task.run_id
    store = ProfileStore(Path(task.store_root))
    if not task.replace and store.is_complete(rid):
        # Dask recomputes a finished task whose result died with its worker: nothing to do.
        return {"run_id": rid, "ok": True, "seconds": 0.0}
    started = time.time()
    threads = tf_threads_for(task.spec.params)
    if threads:
        # Papermill's kernels inherit this process's environment; a local worker runs one
        # run at a time, so setting it here is the run's own setting.
        os.environ["DPMIA_TF_THREADS"] = threads
    stamp = {
        **task.provenance,
        "run_id": rid,
        "seeds": run_seeds(task.spec.params, task.shared),
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
            with _checkpoint_environment(task, store):
                _execute_stages(task, partial, stamp, progress)
            store.publish(partial, rid, replace=task.replace)
            return {"run_id": rid, "ok": True, "seconds": time.time() - started}
        except Exception as exc:  # one failing run must not stop the grid
            if _kernel_died(exc) and attempt <= KERNEL_DEATH_RETRIES:
                shutil.rmtree(partial, ignore_errors=True)
                continue
            failure = run_failure(task.spec, rid, exc, progress["stage"])
            failure.update(attempts=attempt, seconds=time.time() - started)
            atomic_write_json(store.failure_path(rid), failure)
            _keep_failed_notebooks(partial, store, rid)
            return failure
    raise AssertionError("unreachable: the last attempt returns")


def _kernel_died(exc: Exception) -> bool:
    """Whether a notebook failed because its kernel process died (not because a cell raised)."""
    from nbclient.exceptions import DeadKernelError

    # jupyter_client reports a kernel that dies (or never answers) while starting as a plain
    # RuntimeError.
    return isinstance(exc, DeadKernelError) or (
        isinstance(exc, RuntimeError)
        and ("Kernel died" in str(exc) or "Kernel didn't respond" in str(exc))
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


def _keep_failed_notebooks(partial: Path, store: ProfileStore, rid: str) -> None:
    """Keep a failed run's executed notebooks next to its failure record, for debugging."""
    keep = store.failed_dir / rid
    shutil.rmtree(keep, ignore_errors=True)
    keep.mkdir(parents=True, exist_ok=True)
    for kept in [*partial.glob("*.ipynb"), partial / STDERR_LOG]:
        if kept.exists():
            shutil.copy2(kept, keep / kept.name)
    shutil.rmtree(partial, ignore_errors=True)


def _profile_stage_parameters(profile: Profile, store: ProfileStore) -> dict[str, Any]:
    return {**profile.shared_parameters(), "results_root": str(store.root)}


def profile_stage_key(stage: str, profile: Profile, store: ProfileStore, inputs: str = "") -> str:
    """What a once-per-profile notebook depends on: parameters, its code, and `inputs`.

    Its code is the science code and its own code cells (codeversion.code_version) and the
    figures and tables it draws with (publish/: codeversion.rendering_version), so editing a
    figure draws the profile's figures again while no run is redone.
    """
    parameters = _profile_stage_parameters(profile, store)
    key = [parameters, code_version((stage,)), rendering_version(), inputs]
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


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
    shared parameters, its code (see `profile_stage_key`), and `inputs` (e.g. the summary).
    The executed notebook records `stamp`, the code version and the package versions.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    store.stages_dir.mkdir(parents=True, exist_ok=True)
    final = store.stages_dir / f"{stage}.ipynb"
    key_path = store.stages_dir / f"{stage}.key"
    parameters = _profile_stage_parameters(profile, store)
    key = profile_stage_key(stage, profile, store, inputs)
    if final.exists() and key_path.exists() and key_path.read_text() == key:
        try:
            validate_executed_notebook(final)
            return True
        except RecordError:
            pass
    partial = store.new_stage_partial(stage)
    try:
        with _stderr_into(store.stages_dir / f"{stage}.{STDERR_LOG}"):
            papermill.execute_notebook(
                str(paths.notebooks_dir() / f"{stage}.ipynb"),
                str(partial),
                parameters=parameters,
                kernel_name=kernel_name,
                progress_bar=False,
                start_timeout=KERNEL_START_TIMEOUT,
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
        out(f"  its stderr: {store.stages_dir / f'{stage}.{STDERR_LOG}'}")
        if partial.exists():
            os.replace(partial, store.stages_dir / f"{stage}.failed.ipynb")
        key_path.unlink(missing_ok=True)
        return False

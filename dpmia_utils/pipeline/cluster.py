"""Schedule runs on Dask: a local cluster by default, or an existing scheduler.

Each run is one Dask task executing `execute.execute_run` on a worker. A run whose worker
died (an OOM kill, a crash) is started again once, then recorded as lost; the grid goes on.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from typing import Any

from .execute import CNN_THREADS_ENV_VAR, LASSO_THREADS, LASSO_THREADS_ENV_VAR, execute_run
from .plan import PlannedRun

#: How many times Dask may start a run again after the worker running it died.
WORKER_DEATH_RETRIES = 1


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


def run_tasks(
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
        os.environ.setdefault(LASSO_THREADS_ENV_VAR, str(LASSO_THREADS))
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
                # The terminal shows the runner's own progress and failures; the workers'
                # log lines (a heartbeat missed while the cluster closes under load, with its
                # traceback; a nanny restarting a worker, which the runner reports as a lost
                # run) would only bury them.
                silence_logs=logging.CRITICAL,
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

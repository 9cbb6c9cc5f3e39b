"""Faults: a killed runner or worker, damaged run folders, failing runs and bad input.

Each test injects one fault into a real grid (Dask workers, papermill kernels) and checks
that nothing complete is lost or changed, nothing partial or damaged is ever trusted, and
the user gets a clear message and a nonzero exit code.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pandas as pd
import psutil
import pytest

from dpmia_utils.data import simulate_cross, write_cross
from dpmia_utils.pipeline.cluster import run_tasks
from dpmia_utils.pipeline.codeversion import code_version
from dpmia_utils.pipeline.plan import PlannedRun, check_profile_data, plan_runs
from dpmia_utils.pipeline.profiles import load_profile
from dpmia_utils.pipeline.store import ProfileStore
from dpmia_utils.pipeline.summary import summary_table

REPO = Path(__file__).resolve().parents[2]
# A fault can leave a process waiting forever; fail the test instead of hanging the suite.
pytestmark = pytest.mark.timeout(900)
TINY_BLOCKS = """
data: {source: synthetic, synthetic_samples: 120, synthetic_variants: 60}
split: {seed: 0, folds: 2}
attack: {repeats: 1, reference_models: 2, n_bootstrap: 100}
defaults: {epochs: 2, batch_size: 16, n_kernels: 2}
"""


def write_profile(folder: Path, name: str, groups: str, blocks: str = TINY_BLOCKS) -> Path:
    """A tiny synthetic profile (about 15 s per run) written to `folder/name.yml`."""
    path = folder / f"{name}.yml"
    path.write_text(f"profile: {name}\n{blocks}\ngroups:\n{groups}")
    return path


def cli(
    *args: str, results: Path, cache: Path, timeout: float = 600
) -> subprocess.CompletedProcess:
    """`python -m dpmia_utils ...` in a fresh process, with private results and cache."""
    env = {**os.environ, "DPMIA_RESULTS_DIR": str(results), "DPMIA_CACHE_DIR": str(cache)}
    return subprocess.run(
        [sys.executable, "-m", "dpmia_utils", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=timeout,
    )


def cli_run(
    profile: Path, results: Path, cache: Path, *options: str
) -> subprocess.CompletedProcess:
    """`python -m dpmia_utils run <profile> --results <results>` in a fresh process."""
    command = ("run", str(profile), "--no-progress", "--results", str(results), *options)
    return cli(*command, results=results, cache=cache)


def tree_digest(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under `folder`, by relative path."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def tree_state(folder: Path) -> dict[str, tuple[int, str]]:
    """Modification time and content hash of every file and folder under `folder`."""
    state = {}
    for p in sorted([folder, *folder.rglob("*")]):
        content = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        state[str(p.relative_to(folder))] = (p.stat().st_mtime_ns, content)
    return state


def plan(profile_path: Path, results: Path) -> list[PlannedRun]:
    """The runner's plan for a profile against a results root (reads, never writes).

    Uses the code version the store's runs were made with, so that another developer
    editing the package while these tests run does not rename every run.
    """
    profile = load_profile(profile_path)
    store = ProfileStore.for_profile(profile.name, results)
    versions = set()
    for folder in store.runs_dir.glob("*/record.json"):
        try:
            versions.add(json.loads(folder.read_text())["provenance"]["code_version"])
        except (ValueError, KeyError):
            continue  # a damaged record (some tests damage them on purpose)
    version = versions.pop() if len(versions) == 1 else code_version()
    return plan_runs(profile, store, check_profile_data(profile, load=False), version)


def processes_working_in(folder: Path) -> list[psutil.Process]:
    """Live processes whose working directory is `folder` or below (e.g. papermill kernels)."""
    found = []
    for process in psutil.process_iter(["cwd"]):
        cwd = process.info.get("cwd")
        if cwd and (Path(cwd) == folder or folder in Path(cwd).parents):
            found.append(process)
    return found


def alive(process: psutil.Process) -> bool:
    """Whether a process still runs (an exited child its parent has not reaped yet does not)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_for(condition, timeout: float, what: str, runner: subprocess.Popen | None = None):
    """Poll `condition` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        if runner is not None and runner.poll() is not None:
            out, err = runner.communicate()
            pytest.fail(f"the runner exited ({runner.returncode}) before {what}:\n{out}\n{err}")
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def start_runner(profile: Path, results: Path, cache: Path, workers: int) -> subprocess.Popen:
    """The CLI runner in its own process group, so the test can kill all of it at once."""
    env = {**os.environ, "DPMIA_RESULTS_DIR": str(results), "DPMIA_CACHE_DIR": str(cache)}
    command = [sys.executable, "-m", "dpmia_utils", "run", str(profile), "--no-progress"]
    command += ["--results", str(results), "--workers", str(workers)]
    return subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finished_runs(runs: Path) -> list[Path]:
    return [
        d for d in runs.glob("*") if not d.name.startswith(".") and (d / "record.json").exists()
    ]


def partials_in_progress(runs: Path) -> list[Path]:
    return [d for d in runs.glob(".partial-*") if (d / "02_target_training.ipynb").exists()]


def reaped_pid() -> int:
    """The pid of a process that has just exited (and been reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def plant_partial(source: Path, runs: Path, rid: str, params: dict, pid: int) -> Path:
    """A partial folder owned by `pid` holding a complete-looking, forged run `rid`."""
    fake = runs / f".partial-{rid}-{socket.gethostname()}-{pid}-f0f0f0"
    shutil.copytree(source, fake)
    record = json.loads((fake / "record.json").read_text())
    record.update(run_id=rid, params=params)
    record["target"]["test_accuracy_mean"] = 0.123456  # a marker no real run produces
    (fake / "record.json").write_text(json.dumps(record))
    return fake


# --- 1. a killed runner resumes --------------------------------------------------------------


def test_killed_runner_resumes_without_losing_or_trusting_anything(tmp_path):
    results, cache = tmp_path / "results", tmp_path / "cache"
    profile = write_profile(tmp_path, "killed", "  - model: lasso\n    l1: [0.0, 0.001]\n")
    store = ProfileStore(results / "killed")
    runner = start_runner(profile, results, cache, workers=1)
    try:
        wait_for(
            lambda: finished_runs(store.runs_dir) and partials_in_progress(store.runs_dir),
            timeout=300,
            what="one run complete and another in progress",
            runner=runner,
        )
        kernels = processes_working_in(store.runs_dir)
        os.killpg(runner.pid, signal.SIGKILL)
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
        runner.communicate()
    assert kernels, "a papermill kernel should have been working in the partial folder"
    # Kernels run in their own session, so the kill does not reach them; they notice their
    # parent is gone and exit. Nothing may keep working in (or writing to) the store.
    # An exiting kernel's cwd can be unreadable before it is gone, so wait on the processes.
    wait_for(
        lambda: not processes_working_in(results) and not any(alive(k) for k in kernels),
        60,
        "orphaned kernels to exit",
    )
    settled = tree_state(results)
    time.sleep(2)
    assert tree_state(results) == settled, "something still writes to the store after the kill"

    planned = plan(profile, results)
    complete = {p.run_id for p in planned if p.status == "complete"}
    interrupted = {p.run_id for p in planned} - complete
    assert len(complete) >= 1 and len(interrupted) >= 1
    before = {rid: tree_digest(store.run_dir(rid)) for rid in complete}
    own_partials = list(store.runs_dir.glob(".partial-*"))
    assert own_partials, "the interrupted run's partial folder should be left behind"

    # Forged partial folders claiming the interrupted run: one of a dead owner (deleted),
    # one of a live owner (this test: left alone). Neither may be read as a result.
    victim = next(p for p in planned if p.run_id in interrupted)
    source = store.run_dir(next(iter(complete)))
    stale = plant_partial(source, store.runs_dir, victim.run_id, victim.spec.params, reaped_pid())
    live = plant_partial(source, store.runs_dir, victim.run_id, victim.spec.params, os.getpid())
    live_digest = tree_digest(live)

    rerun = cli_run(profile, results, cache)
    assert rerun.returncode == 0, rerun.stderr
    assert (
        f"{len(interrupted)} executed, {len(complete)} already complete, 0 failed" in rerun.stdout
    )

    for rid, digest in before.items():
        assert tree_digest(store.run_dir(rid)) == digest, f"complete run {rid} was changed"
    for rid in interrupted:
        record = store.load_record(rid)
        assert record["target"]["test_accuracy_mean"] != 0.123456
    assert not stale.exists() and not any(p.exists() for p in own_partials)
    assert live.exists() and tree_digest(live) == live_digest
    summary = pd.read_csv(store.summary_path)
    assert sorted(summary["run_id"]) == sorted(p.run_id for p in planned)
    assert summary["run_id"].is_unique and (summary["status"] == "complete").all()
    assert 0.123456 not in summary["target_test_accuracy_mean"].round(6).tolist()
    assert not processes_working_in(results)
    shutil.rmtree(live)


def _valid_run(store: ProfileStore, rid: str, accuracy: float) -> Path:
    """A partial folder holding a valid run record (no notebooks) with a given accuracy."""
    partial = store.new_partial_dir(rid)
    record = {
        "schema_version": 1,
        "run_id": rid,
        "profile": "p",
        "group": "g",
        "params": {},
        "target": {"test_accuracy_mean": accuracy, "train_accuracy_mean": 0.9, "epsilon": {}},
        "attack": {"attacks": {}},
        "provenance": {},
        "notebooks": [],
    }
    (partial / "record.json").write_text(json.dumps(record))
    return partial


def test_a_late_finisher_cannot_replace_a_published_run_unless_forced(tmp_path):
    # An orphaned worker or a second runner on the same store finishing the same run late.
    store = ProfileStore(tmp_path)
    store.publish(_valid_run(store, "abc", 0.6), "abc")
    late = _valid_run(store, "abc", 0.7)
    store.publish(late, "abc")
    assert store.load_record("abc")["target"]["test_accuracy_mean"] == 0.6 and not late.exists()
    store.publish(_valid_run(store, "abc", 0.8), "abc", replace=True)  # --force
    assert store.load_record("abc")["target"]["test_accuracy_mean"] == 0.8
    (store.run_dir("abc") / "record.json").write_text("{")  # damaged: replaced without force
    store.publish(_valid_run(store, "abc", 0.9), "abc")
    assert store.load_record("abc")["target"]["test_accuracy_mean"] == 0.9
    assert [p.name for p in store.runs_dir.iterdir()] == ["abc"]


def test_a_partial_folder_in_use_by_a_live_process_is_never_cleaned(tmp_path):
    store = ProfileStore(tmp_path)
    store.runs_dir.mkdir(parents=True)
    host = socket.gethostname()
    orphaned = store.runs_dir / f".partial-abc-{host}-{reaped_pid()}-aaaaaa"
    abandoned = store.runs_dir / f".partial-def-{host}-{reaped_pid()}-bbbbbb"
    remote = store.runs_dir / ".partial-ghi-otherhost-1-cccccc"
    trash = store.runs_dir / ".trash-jkl-dddddd"
    for folder in (orphaned, abandoned, remote, trash):
        folder.mkdir()
    # Like a Jupyter kernel that outlived its killed worker: the owner pid is dead, but a
    # live process still works inside the folder.
    kernel = subprocess.Popen(["sleep", "60"], cwd=orphaned)
    try:
        wait_for(lambda: processes_working_in(orphaned), 10, "the process to start")
        assert sorted(store.clean_stale_partials()) == sorted([abandoned, trash])
        assert orphaned.exists() and remote.exists()
    finally:
        kernel.kill()
        kernel.wait()
    assert store.clean_stale_partials() == [orphaned]
    assert remote.exists()  # another host's run may be in progress on a shared filesystem
    old = time.time() - 8 * 24 * 3600
    os.utime(remote, (old, old))
    assert store.clean_stale_partials() == [remote]


# --- 1b. a killed worker -----------------------------------------------------------------------


def test_a_task_whose_worker_dies_is_retried_once_then_reported_lost(tmp_path):
    attempts = tmp_path / "attempts"
    attempts.mkdir()

    def doomed(rid: str, folder: str) -> dict:
        # Runs on a Dask worker: leave a mark, then die as an OOM kill would.
        Path(folder, f"{rid}-{os.getpid()}").touch()
        if rid == "doomed":
            os.kill(os.getpid(), signal.SIGKILL)
        return {"run_id": rid, "ok": True}

    def spawned_workers() -> set[psutil.Process]:
        found = set()
        for child in psutil.Process().children(recursive=True):
            try:
                if alive(child) and "spawn_main" in " ".join(child.cmdline()):
                    found.add(child)
            except psutil.Error:
                continue  # exited meanwhile
        return found

    # Workers of other clusters of this session (the smoke grid's) are not this test's.
    others = spawned_workers()
    spec = load_profile(REPO / "parameters" / "smoke.yml").runs[0]
    tasks = [PlannedRun(spec, "doomed", "pending"), PlannedRun(spec, "fine", "pending")]
    results: list[dict] = []
    run_tasks(tasks, lambda t: (t.run_id, str(attempts)), None, 1, results.append, task=doomed)

    by_id = {r["run_id"]: r for r in results}
    assert set(by_id) == {"doomed", "fine"} and by_id["fine"]["ok"]
    lost = by_id["doomed"]
    assert lost["ok"] is False and lost["lost"] and "worker died" in lost["message"]
    assert lost["exception"] == "KilledWorker" and lost["label"] == spec.label
    assert len(list(attempts.glob("doomed-*"))) == 2  # the first try and exactly one retry

    wait_for(lambda: not spawned_workers() - others, 30, "the cluster's worker processes to exit")


def test_a_run_whose_kernel_dies_is_started_again_once(tmp_path, monkeypatch):
    import threading

    from dpmia_utils.pipeline.execute import RunTask, execute_run

    monkeypatch.setenv("DPMIA_CACHE_DIR", str(tmp_path / "cache"))
    profile = load_profile(write_profile(tmp_path, "kernel", "  - model: lasso\n"))
    store = ProfileStore(tmp_path / "results" / "kernel")
    killed: list[int] = []

    def kill_the_first_kernel() -> None:
        # A kernel crashing (or killed by the OOM killer) in the first stage of the run.
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            # Busy executing the first stage: papermill has begun writing its notebook (the
            # kernel started; one killed while starting is restarted unnoticed) and the stage
            # has not written its output yet. A fixed 5 s missed it on a quiet machine, where
            # the smoke Lasso's training stage ends sooner (the run then passed at attempt 1).
            partial = list(store.runs_dir.glob(".partial-*"))
            started = partial and (partial[0] / "02_target_training.ipynb").exists()
            if not started or (partial[0] / "target.json").exists():
                time.sleep(0.05)
                continue
            for process in processes_working_in(store.root):
                # papermill also moves this test process into the folder: kill the kernel only.
                is_kernel = "ipykernel" in " ".join(process.cmdline())
                if is_kernel:
                    process.kill()
                    killed.append(process.pid)
                    return
            time.sleep(0.1)

    killer = threading.Thread(target=kill_the_first_kernel)
    killer.start()
    shared = profile.shared_parameters()
    result = execute_run(
        RunTask(profile.runs[0], "r1", shared, str(store.root), {"code_version": "v"})
    )
    killer.join()
    assert len(killed) == 1
    assert result["ok"], result
    record = store.load_record("r1")
    assert record["provenance"]["attempt"] == 2
    assert not store.failure_path("r1").exists()
    assert [p.name for p in store.runs_dir.iterdir()] == ["r1"]  # the first try's folder went


@pytest.mark.slow
def test_killing_a_worker_mid_run_loses_nothing(tmp_path):
    results, cache = tmp_path / "results", tmp_path / "cache"
    profile = write_profile(tmp_path, "workers", "  - model: lasso\n    l1: [0.0, 0.001]\n")
    store = ProfileStore(results / "workers")
    runner = start_runner(profile, results, cache, workers=2)
    killed: list[int] = []

    def worker_of_victim():
        # The partial folder names its owner: the worker process executing the run.
        for partial in partials_in_progress(store.runs_dir):
            pid = int(partial.name.split("-")[-2])
            if partial.name.split("-")[1] == victim and pid not in killed:
                return pid
        return None

    try:
        first = wait_for(
            lambda: partials_in_progress(store.runs_dir), 300, "a run in progress", runner
        )
        victim = first[0].name.split("-")[1]
        for attempt in range(2):  # Dask retries once; the second death is reported
            pid = wait_for(worker_of_victim, 300, f"attempt {attempt + 1} of {victim}", runner)
            assert psutil.Process(pid).ppid() == runner.pid  # a worker, not the runner
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        out, err = runner.communicate(timeout=600)
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.communicate()
    assert runner.returncode == 1, err
    assert "1 run(s) failed" in err and f"run {victim}" in out and "worker died" in out
    failure = json.loads(store.failure_path(victim).read_text())
    assert failure["lost"] and failure["exception"] == "KilledWorker"
    summary = pd.read_csv(store.summary_path).set_index("run_id")
    assert summary.loc[victim, "status"] == "failed"
    assert (summary.drop(index=victim)["status"] == "complete").all()

    rerun = cli_run(profile, results, cache)
    assert rerun.returncode == 0, rerun.stderr
    assert "1 executed, 1 already complete, 0 failed" in rerun.stdout
    assert not store.failure_path(victim).exists()
    assert (pd.read_csv(store.summary_path)["status"] == "complete").all()
    assert not list(store.runs_dir.glob(".partial-*"))


# --- 2 and 3. failing runs, damaged run folders ----------------------------------------------

FAILING_GROUPS = """\
  - name: lasso
    model: lasso
    l1: [0.0, 0.001]
  - name: broken
    model: cnn
    kernel_size: 80
"""
BROKEN_LABEL = "cnn l1=0 e2 b16"


@pytest.fixture(scope="module")
def failing_grid(tmp_path_factory):
    """A grid of two good runs and a CNN whose kernel is wider than the 60 variants (Conv1D
    refuses it at run time), executed once by the CLI."""
    root = tmp_path_factory.mktemp("failing")
    results, cache = root / "results", root / "cache"
    profile = write_profile(root, "failing", FAILING_GROUPS)
    done = cli_run(profile, results, cache, "--workers", "2")
    return done, profile, results, cache


def test_a_failing_run_is_recorded_while_the_others_complete(failing_grid):
    done, profile, results, _ = failing_grid
    store = ProfileStore(results / "failing")
    planned = {p.spec.label: p for p in plan(profile, results)}
    broken = planned[BROKEN_LABEL].run_id
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "1 run(s) failed; see the failed/ folder" in done.stderr
    assert f"run {broken} ({BROKEN_LABEL}) failed in 02_target_training cell" in done.stdout

    failure = json.loads(store.failure_path(broken).read_text())
    assert failure["stage"] == "02_target_training" and failure["exception"] == "ValueError"
    assert "kernel_size" in failure["message"]
    # The record identifies the cell that raised in the kept, executed notebook (which also
    # carries papermill's error banners), and the cell index counts the stage's cells.
    kept = nbformat.read(store.failed_dir / broken / "02_target_training.ipynb", as_version=4)
    (cell,) = [c for c in kept.cells if c.metadata.get("papermill", {}).get("status") == "failed"]
    assert cell.execution_count == failure["execution_count"]
    # The record keeps the cell's first 1,000 characters.
    assert cell.source[:1000] == failure["cell_source"] and "train_target" in cell.source
    assert any(o.get("ename") == "ValueError" for o in cell.outputs)
    executed = [
        c for c in kept.cells if "papermill-error-cell-tag" not in c.metadata.get("tags", [])
    ]
    assert executed[failure["cell_index"]] is cell
    assert not store.run_dir(broken).exists()

    summary = pd.read_csv(store.summary_path).set_index("label")
    assert summary.loc[BROKEN_LABEL, "status"] == "failed"
    assert (summary.drop(index=BROKEN_LABEL)["status"] == "complete").all()
    assert len(summary) == 3 and summary["run_id"].is_unique


def test_kernel_stderr_goes_to_each_runs_log_not_the_terminal(failing_grid):
    done, profile, results, _ = failing_grid
    store = ProfileStore(results / "failing")
    planned = {p.spec.label: p for p in plan(profile, results)}
    broken = planned[BROKEN_LABEL].run_id
    # TensorFlow's start-up lines (cuDNN/cuFFT/cuBLAS "Unable to register factory", CPU
    # feature notes) come from the kernels; they land in the run's own log.
    for rid in store.complete_run_ids():
        assert (store.run_dir(rid) / "stderr.log").is_file()
    assert (store.failed_dir / broken / "stderr.log").is_file()
    assert "Unable to register" not in done.stderr + done.stdout
    assert "tensorflow" not in (done.stderr + done.stdout).lower()
    # The failure message on the terminal points at the kept notebooks and log.
    assert str(store.failed_dir / broken) in done.stdout


def test_the_book_refuses_a_grid_with_a_gap(failing_grid):
    _, _, results, cache = failing_grid
    done = cli(
        "book", "--profile", "failing", "--results", str(results), results=results, cache=cache
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "1 run(s) of profile 'failing' are missing or failed" in done.stderr
    assert BROKEN_LABEL in done.stderr and "--allow-partial" in done.stderr


def test_a_partial_book_lists_the_gap(failing_grid, tmp_path):
    from dpmia_utils.publish.book import build_book

    _, profile, results, _ = failing_grid
    broken = {p.spec.label: p.run_id for p in plan(profile, results)}[BROKEN_LABEL]
    built = build_book("failing", results_root=results, allow_partial=True, book_root=tmp_path)
    results_page = (built.html_dir / "book" / "results.html").read_text()
    assert "Runs missing from these results" in results_page
    assert broken in results_page and BROKEN_LABEL in results_page
    curves_page = (built.html_dir / "book" / "_generated" / "04_curve_fitting.html").read_text()
    assert "Missing or failed: 1" in curves_page and BROKEN_LABEL in curves_page
    # The notebook's markdown table of the gap renders as a table, not as pipes in a paragraph
    # (myst-nb renders displayed markdown as CommonMark, without tables, unless told: _config).
    gap_table = curves_page[curves_page.index("Missing or failed: 1") :]
    assert "|:-" not in curves_page and gap_table.index("<table") < gap_table.index(BROKEN_LABEL)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _edit_notebook(path: Path, edit) -> None:
    nb = nbformat.read(path, as_version=4)
    edit(nb)
    nbformat.write(nb, path)


def _edit_record(path: Path, edit) -> None:
    record = json.loads(path.read_text())
    edit(record)
    path.write_text(json.dumps(record))


DAMAGE = {
    "truncated-notebook": (
        lambda run: _truncate(run / "03_membership_inference.ipynb"),
        "unreadable notebook",
    ),
    "papermill-exception": (
        lambda run: _edit_notebook(
            run / "02_target_training.ipynb",
            lambda nb: nb.metadata.papermill.update(exception=True),
        ),
        "papermill recorded an exception",
    ),
    "no-end-time": (
        lambda run: _edit_notebook(
            run / "03_membership_inference.ipynb",
            lambda nb: nb.metadata.papermill.update(end_time=None),
        ),
        "no end time",
    ),
    "cell-never-ran": (
        lambda run: _edit_notebook(
            run / "02_target_training.ipynb",
            lambda nb: nb.cells[-1].metadata.papermill.update(status="pending"),
        ),
        "is 'pending', not completed",
    ),
    "record-fails-schema": (
        lambda run: _edit_record(run / "record.json", lambda r: r["target"].pop("epsilon")),
        "target has no 'epsilon'",
    ),
    "record-wrong-type": (
        lambda run: _edit_record(
            run / "record.json", lambda r: r["target"].update(test_accuracy_mean="0.9")
        ),
        "should be a number in [0, 1]",
    ),
    "record-truncated": (lambda run: _truncate(run / "record.json"), "truncated"),
    "record-of-another-run": (
        lambda run: _edit_record(run / "record.json", lambda r: r.update(run_id="0" * 12)),
        "belongs to run",
    ),
    "record-drops-a-notebook": (
        lambda run: _edit_record(run / "record.json", lambda r: r["notebooks"].pop()),
        "record lacks 03_membership_inference.ipynb",
    ),
}


@pytest.mark.parametrize("damage,reason", DAMAGE.values(), ids=DAMAGE.keys())
def test_a_damaged_run_folder_is_invalid_and_never_summarised(
    failing_grid, tmp_path, damage, reason
):
    from dpmia_utils.publish.book import missing_runs

    _, profile, results, _ = failing_grid
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    store = ProfileStore(copy / "failing")
    victim = next(p for p in plan(profile, copy) if p.status == "complete")
    damage(store.run_dir(victim.run_id))

    planned = {p.run_id: p for p in plan(profile, copy)}
    assert planned[victim.run_id].status == "invalid"
    assert reason in planned[victim.run_id].reason
    others = [p for rid, p in planned.items() if rid != victim.run_id]
    assert sorted(p.status for p in others) == ["complete", "failed"]
    table = summary_table(store, list(planned.values())).set_index("run_id")
    assert table.loc[victim.run_id, "status"] == "missing"
    assert pd.isna(table.loc[victim.run_id, "target_test_accuracy_mean"])
    # The summary on disk still calls it complete; the book checks again and refuses.
    assert victim.run_id in set(missing_runs(store)["run_id"])


def test_a_damaged_run_is_reported_and_redone(failing_grid, monkeypatch):
    from dpmia_utils.pipeline import grid

    _, profile, results, _ = failing_grid
    store = ProfileStore(results / "failing")
    planned = plan(profile, results)
    victim, intact = [p for p in planned if p.status == "complete"]
    # Keep the grid's code version even if someone edits the package while the tests run.
    version = json.loads((store.run_dir(intact.run_id) / "record.json").read_text())
    version = version["provenance"]["code_version"]
    original = grid.code_version
    monkeypatch.setattr(
        grid, "code_version", lambda *stages: original(*stages) if stages else version
    )
    intact_digest = tree_digest(store.run_dir(intact.run_id))
    DAMAGE["record-truncated"][0](store.run_dir(victim.run_id))

    lines: list[str] = []
    report = grid.run_grid(
        profile, results_root=results, n_workers=2, progress=False, out=lines.append
    )
    assert report.invalid == [victim.run_id]
    assert any(
        line.startswith(f"redoing {victim.run_id}") and "truncated" in line for line in lines
    )
    assert report.executed == [victim.run_id] and report.skipped == [intact.run_id]
    assert store.load_record(victim.run_id)["run_id"] == victim.run_id  # valid again
    assert tree_digest(store.run_dir(intact.run_id)) == intact_digest
    assert list(report.failed) == [p.run_id for p in planned if p.status == "failed"]
    summary = pd.read_csv(store.summary_path).set_index("label")
    assert (summary.drop(index=BROKEN_LABEL)["status"] == "complete").all()


# --- 5. bad input on the command line --------------------------------------------------------

BAD_GRIDS = {
    "unknown-run-key": ("groups: [{model: lasso, nosie_multiplier: 1.0}]", "nosie_multiplier"),
    "wrong-type": ("groups: [{model: lasso, batch_size: sixteen}]", "'batch_size' must be int"),
    "empty-grid": ("profile: t\ngroups: []", "empty grid"),
    "bad-yaml": ("groups: [model: lasso", "not valid YAML"),
}


def _assert_clean_cli_error(done: subprocess.CompletedProcess, *expected: str) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for text in expected:
        assert text in lines[0]


@pytest.fixture
def existing_store(tmp_path) -> Path:
    """A results root that already holds another profile's store, to show it stays untouched."""
    results = tmp_path / "results"
    (results / "other" / "runs" / "abc").mkdir(parents=True)
    (results / "other" / "summary.csv").write_text("run_id,status\nabc,complete\n")
    return results


@pytest.mark.parametrize("text,expected", BAD_GRIDS.values(), ids=BAD_GRIDS.keys())
def test_a_malformed_grid_is_a_one_line_error_and_touches_nothing(
    tmp_path, existing_store, text, expected
):
    path = tmp_path / "mygrid.yml"
    path.write_text(text)
    before = tree_state(existing_store)
    done = cli_run(path, existing_store, tmp_path / "cache")
    _assert_clean_cli_error(done, "mygrid.yml", expected)
    assert tree_state(existing_store) == before


def _bad_cross(folder: Path) -> Path:
    cross = simulate_cross(n_samples=60, n_variants=30, seed=1)
    write_cross(cross, folder, zipped=False)
    genotypes = folder / "genotype_full.txt"
    lines = genotypes.read_text().splitlines()
    cells = lines[3].split("\t")
    cells[5] = "x"  # one non-numeric call, line 4, column 6
    lines[3] = "\t".join(cells)
    genotypes.write_text("\n".join(lines) + "\n")
    return folder


@pytest.mark.parametrize(
    "make_dir,expected",
    [
        (_bad_cross, ["genotype_full.txt", "line 4", "non-numeric genotype token 'x'"]),
        (lambda folder: folder / "nowhere", ["nowhere", "does not exist"]),
    ],
    ids=["malformed-genotypes", "missing-folder"],
)
def test_bad_data_is_a_one_line_error_before_anything_runs(
    tmp_path, existing_store, make_dir, expected
):
    data_dir = make_dir(tmp_path / "cross")
    profile = write_profile(
        tmp_path,
        "baddata",
        "  - model: lasso\n",
        blocks=TINY_BLOCKS.replace(
            "{source: synthetic, synthetic_samples: 120, synthetic_variants: 60}",
            f"{{source: yeast, data_dir: '{data_dir}'}}",
        ),
    )
    before = tree_state(existing_store)
    done = cli_run(profile, existing_store, tmp_path / "cache")
    _assert_clean_cli_error(done, "baddata.yml: data:", *expected)
    # Refused up front, before any cluster, kernel or results folder: nothing was written.
    assert tree_state(existing_store) == before
    assert not (existing_store / "baddata").exists()

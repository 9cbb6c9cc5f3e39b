"""The results store: where each run's record and executed notebooks live, written atomically.

Layout, per profile (all git-ignored build products)::

    results/<profile>/
        runs/<run_id>/            one complete run: params.json, executed stage notebooks,
                                  target.json, attack.json, fold weights, record.json (last)
        runs/.partial-<run_id>-<host>-<pid>-<nonce>/   a run in progress (never read)
        runs/.trash-<run_id>-<nonce>/  a replaced or invalid run being deleted (never read)
        failed/<run_id>.json      a run that raised: stage, cell index, exception
        stages/                   the once-per-profile notebooks (01 data prep, 04 curves)
        summary.csv               one row per configuration

A *published* store (``ProfileStore.for_published``: ``published/<profile>/``, committed with
the repository) has the same layout without the weights, the intermediate JSON files and most
notebooks: every run keeps params.json and record.json, and only the runs the book shows keep
their executed notebooks (``publish.publication.publish_profile``). There a record is valid
without its notebooks; a notebook that is there must still be a clean execution.

A run directory appears under its final name only by an atomic rename after every stage
succeeded and its record validated, so a reader sees a run complete or not at all. A
partial folder is deleted only when nobody can still be writing to it: its owner process
on this host is gone and no live process works inside it (an orphaned Jupyter kernel
would); partial folders of other hosts are left alone unless untouched for a week.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from .. import paths
from ..jsonio import JSONFileError, read_json

PARTIAL_PREFIX = ".partial-"
TRASH_PREFIX = ".trash-"
#: A partial folder of another host is presumed abandoned after this long without a change.
FOREIGN_PARTIAL_MAX_AGE = 7 * 24 * 3600.0
RECORD_SCHEMA_VERSION = 1
RECORD_REQUIRED = {
    "schema_version": int,
    "run_id": str,
    "profile": str,
    "group": str,
    "params": dict,
    "target": dict,
    "attack": dict,
    "provenance": dict,
    "notebooks": list,
}


class RecordError(JSONFileError):
    """A results file exists but cannot be trusted (truncated, failed run, schema mismatch)."""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def validate_record(record: Any, where: str = "record") -> dict[str, Any]:
    """Check a run record against the schema; return it or raise RecordError naming the field."""
    if not isinstance(record, dict):
        raise RecordError(f"{where}: expected a JSON object")
    for key, kind in RECORD_REQUIRED.items():
        if key not in record:
            raise RecordError(f"{where}: missing field '{key}'")
        if not isinstance(record[key], kind):
            raise RecordError(f"{where}: field '{key}' should be {kind.__name__}")
    if record["schema_version"] != RECORD_SCHEMA_VERSION:
        raise RecordError(
            f"{where}: schema_version {record['schema_version']} != {RECORD_SCHEMA_VERSION}"
        )
    target = record["target"]
    for key in ("test_accuracy_mean", "train_accuracy_mean", "epsilon"):
        if key not in target:
            raise RecordError(f"{where}: target has no '{key}'")
    # The values the summary table reads must be what it expects, or the run is not usable.
    for key in ("test_accuracy_mean", "train_accuracy_mean"):
        if not (_is_number(target[key]) and 0.0 <= target[key] <= 1.0):
            raise RecordError(f"{where}: target '{key}' should be a number in [0, 1]")
    if not isinstance(target["epsilon"], dict):
        raise RecordError(f"{where}: target 'epsilon' should be a mapping of accountants")
    if "attacks" not in record["attack"] or not isinstance(record["attack"]["attacks"], dict):
        raise RecordError(f"{where}: attack has no 'attacks' mapping")
    for name, result in record["attack"]["attacks"].items():
        metrics = result.get("metrics") if isinstance(result, dict) else None
        if not isinstance(metrics, dict) or not all(
            isinstance(stats, dict)
            and all(stats.get(k) is None or _is_number(stats[k]) for k in ("mean", "std"))
            for stats in metrics.values()
        ):
            raise RecordError(f"{where}: attack '{name}' has malformed metrics")
    if not all(isinstance(name, str) for name in record["notebooks"]):
        raise RecordError(f"{where}: field 'notebooks' should list notebook file names")
    return record


def validate_executed_notebook(path: Path) -> None:
    """Raise RecordError unless `path` is a readable notebook that papermill finished cleanly."""
    try:
        nb = nbformat.read(path, as_version=4)
    except FileNotFoundError:
        raise RecordError(f"{path}: missing") from None
    except Exception as exc:  # nbformat raises several kinds for truncated JSON
        raise RecordError(f"{path}: unreadable notebook ({exc.__class__.__name__})") from None
    meta = nb.metadata.get("papermill", {})
    if meta.get("exception"):
        raise RecordError(f"{path}: papermill recorded an exception")
    if not meta.get("end_time"):
        raise RecordError(f"{path}: papermill has no end time (interrupted)")
    # Papermill marks every cell it ran; one left pending, running or failed means the
    # notebook on disk is not the record of a clean execution, whatever its header says.
    for index, cell in enumerate(nb.cells):
        status = cell.get("metadata", {}).get("papermill", {}).get("status", "completed")
        if status != "completed":
            raise RecordError(f"{path}: cell {index} is '{status}', not completed")


#: The fixed places inside a profile's store (see the module docstring).
STORE_LAYOUT = {
    "runs_dir": "runs",
    "failed_dir": "failed",
    "stages_dir": "stages",
    "summary_path": "summary.csv",
}
#: Saved training prefixes (training.checkpoints), next to the profiles' stores and shared by
#: all of them, one folder per code version: a cache, so deleting it costs time, never results.
CHECKPOINTS_FOLDER = ".checkpoints"


@dataclass(frozen=True)
class ProfileStore:
    """The folders of one profile's results: `root` and the places of STORE_LAYOUT in it."""

    root: Path
    #: Published results: records stand without their notebooks (see the module docstring).
    published: bool = False
    runs_dir: Path = field(init=False, repr=False, compare=False)
    failed_dir: Path = field(init=False, repr=False, compare=False)
    stages_dir: Path = field(init=False, repr=False, compare=False)
    summary_path: Path = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for attribute, name in STORE_LAYOUT.items():
            object.__setattr__(self, attribute, Path(self.root) / name)

    @classmethod
    def for_profile(cls, profile: str, results_root: Path | None = None) -> ProfileStore:
        """The store of `profile` under `results_root` (default: paths.results_dir())."""
        return cls((results_root or paths.results_dir()) / profile)

    @classmethod
    def for_published(cls, profile: str, published_root: Path | None = None) -> ProfileStore:
        """The published store of `profile` under `published_root` (default: published/)."""
        return cls((published_root or paths.published_dir()) / profile, published=True)

    @property
    def checkpoints_dir(self) -> Path:
        """Saved training prefixes, shared with the other profiles under the same results root."""
        return Path(self.root).parent / CHECKPOINTS_FOLDER

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    def failure_path(self, run_id: str) -> Path:
        return self.failed_dir / f"{run_id}.json"

    def new_partial_dir(self, run_id: str) -> Path:
        """A fresh private folder for a run in progress, named after its owner process."""
        path = self.runs_dir / partial_name(run_id)
        path.mkdir(parents=True)
        return path

    def new_stage_partial(self, stage: str) -> Path:
        """A private file name for a profile stage notebook being executed."""
        self.stages_dir.mkdir(parents=True, exist_ok=True)
        return self.stages_dir / f"{partial_name(stage)}.ipynb"

    def complete_run_ids(self) -> Iterator[str]:
        """IDs of runs whose folder carries its final name (validity is checked separately)."""
        if not self.runs_dir.is_dir():
            return
        for entry in sorted(self.runs_dir.iterdir()):
            if entry.is_dir() and not entry.name.startswith("."):
                yield entry.name

    def read_record(self, run_id: str) -> dict[str, Any]:
        """A run's validated record alone, its notebooks not checked (for reading its numbers
        where the notebooks may not be kept), or RecordError saying why it is not usable."""
        where = str(self.run_dir(run_id) / "record.json")
        try:
            payload = read_json(where)
        except JSONFileError as exc:  # missing or truncated: not a run to trust
            raise RecordError(str(exc)) from None
        record = validate_record(payload, where)
        if record["run_id"] != run_id:
            raise RecordError(f"{where}: belongs to run '{record['run_id']}', not '{run_id}'")
        return record

    def load_record(self, run_id: str) -> dict[str, Any]:
        """The validated record of a complete run, or RecordError saying why it is not usable."""
        record = self.read_record(run_id)
        folder = self.run_dir(run_id)
        for notebook in record["notebooks"]:
            if self.published and not (folder / notebook).exists():
                continue
            validate_executed_notebook(folder / notebook)
        return record

    def is_complete(self, run_id: str) -> bool:
        """Whether the run's folder holds a record that validates."""
        try:
            self.load_record(run_id)
        except RecordError:
            return False
        return True

    def publish(self, partial: Path, run_id: str, replace: bool = False) -> Path:
        """Move a finished partial folder to its final name atomically.

        A valid run already under that name (another process finished it first) is kept and
        the partial discarded, unless `replace` (e.g. --force); an invalid one is replaced.
        """
        final = self.run_dir(run_id)
        if final.exists() and not replace and self.is_complete(run_id):
            _remove(partial, self.runs_dir / f"{TRASH_PREFIX}{run_id}-{uuid.uuid4().hex[:6]}")
        elif final.exists():
            swap_in(
                partial, final, self.runs_dir / f"{TRASH_PREFIX}{run_id}-{uuid.uuid4().hex[:6]}"
            )
        else:
            try:
                os.rename(partial, final)
            except OSError:  # another process published between our check and the rename
                if not self.is_complete(run_id):
                    raise
                _remove(partial, self.runs_dir / f"{TRASH_PREFIX}{run_id}-{uuid.uuid4().hex[:6]}")
        self.failure_path(run_id).unlink(missing_ok=True)
        return final

    def discard(self, run_id: str) -> None:
        """Remove a complete-looking run that failed validation, so it is redone."""
        folder = self.run_dir(run_id)
        if folder.exists():
            _remove(folder, self.runs_dir / f"{TRASH_PREFIX}{run_id}-{uuid.uuid4().hex[:6]}")

    def clean_stale_partials(self, run_id: str | None = None) -> list[Path]:
        """Delete abandoned partial folders (and stage files) and trash; return what went.

        A partial is kept while its owner process on this host lives or any live process has
        its working directory inside it (papermill starts kernels there, and a kernel can
        outlive a killed worker). With `run_id`, only that run's partials are considered.
        """
        removed: list[Path] = []
        entries = [p for d in (self.runs_dir, self.stages_dir) if d.is_dir() for p in d.iterdir()]
        busy = None  # working directories of live processes, looked up once if needed
        host = socket.gethostname()
        for entry in entries:
            name = entry.name
            if name.startswith(TRASH_PREFIX) and run_id is None:
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
                continue
            if not name.startswith(PARTIAL_PREFIX):
                continue
            owner = _owner(name)
            if run_id is not None and (owner is None or owner[0] != run_id):
                continue
            if owner is not None and owner[1] != host:
                try:
                    age = time.time() - entry.stat().st_mtime
                except FileNotFoundError:
                    continue  # its owner just published or removed it
                if age < FOREIGN_PARTIAL_MAX_AGE:
                    continue  # another host's run may be in progress on a shared filesystem
            elif owner is not None and _pid_alive(owner[2]):
                continue
            if busy is None:
                busy = _working_directories()
            resolved = entry.resolve()
            if any(cwd == resolved or resolved in cwd.parents for cwd in busy):
                continue
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
        return removed


def swap_in(new: Path, final: Path, trash: Path) -> None:
    """Put the folder `new` in place of the existing `final` by two renames, so a reader
    sees the old folder or the new one, never half of either; the old one is deleted."""
    os.rename(final, trash)
    os.rename(new, final)
    shutil.rmtree(trash, ignore_errors=True)


def partial_name(label: str) -> str:
    """The name of a private work-in-progress entry: label, host, owner pid and a nonce."""
    return f"{PARTIAL_PREFIX}{label}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def _owner(name: str) -> tuple[str, str, int] | None:
    """(label, host, pid) from a partial entry's name, or None when it does not parse."""
    stem = name[len(PARTIAL_PREFIX) :].removesuffix(".ipynb")
    parts = stem.split("-")
    # label-host-pid-nonce; labels have no dashes but hostnames may, so read from both ends.
    if len(parts) >= 4 and parts[-2].isdigit():
        return parts[0], "-".join(parts[1:-2]), int(parts[-2])
    return None


def _remove(folder: Path, trash: Path) -> None:
    """Delete a folder by renaming it out of the way first, so readers never see it half gone."""
    os.rename(folder, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _working_directories() -> list[Path]:
    """The working directories of the live processes we may inspect (empty without psutil)."""
    try:
        import psutil
    except ImportError:  # psutil comes with dask.distributed; without it, trust the owner pid
        return []
    found = []
    for process in psutil.process_iter(["cwd"]):
        cwd = process.info.get("cwd")
        if cwd:
            found.append(Path(cwd))
    return found


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

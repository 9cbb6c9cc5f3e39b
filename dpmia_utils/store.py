"""The results store: where each run's record and executed notebooks live, written atomically.

Layout, per profile (all git-ignored build products)::

    results/<profile>/
        runs/<run_id>/            one complete run: params.json, executed stage notebooks,
                                  target.json, attack.json, fold weights, record.json (last)
        runs/.partial-<run_id>-<pid>-<nonce>/   a run in progress (never read)
        failed/<run_id>.json      a run that raised: stage, cell index, exception
        stages/                   the once-per-profile notebooks (01 data prep, 04 curves)
        summary.csv               one row per configuration

A run directory appears under its final name only by an atomic rename after every stage
succeeded and its record validated, so a reader sees a run complete or not at all.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from . import paths

PARTIAL_PREFIX = ".partial-"
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
}


class RecordError(ValueError):
    """A results file exists but cannot be trusted (truncated, failed run, schema mismatch)."""


def atomic_write_text(path: Path, text: str) -> None:
    """Write text to `path` so that readers see the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, payload: Any) -> None:
    """Write JSON atomically; NaN is refused so that every record is strict JSON."""
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True, allow_nan=False) + "\n")


def read_json(path: Path) -> Any:
    """Read a JSON file, raising RecordError (with the path) when it is missing or truncated."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RecordError(f"{path}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RecordError(f"{path}: not valid JSON ({exc}); truncated or corrupted") from None


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
    for key in ("test_accuracy_mean", "train_accuracy_mean", "epsilon"):
        if key not in record["target"]:
            raise RecordError(f"{where}: target has no '{key}'")
    if "attacks" not in record["attack"] or not isinstance(record["attack"]["attacks"], dict):
        raise RecordError(f"{where}: attack has no 'attacks' mapping")
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


@dataclass(frozen=True)
class ProfileStore:
    """The folders of one profile's results."""

    root: Path

    @classmethod
    def for_profile(cls, profile: str, results_root: Path | None = None) -> ProfileStore:
        """The store of `profile` under `results_root` (default: paths.results_dir())."""
        return cls((results_root or paths.results_dir()) / profile)

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def failed_dir(self) -> Path:
        return self.root / "failed"

    @property
    def stages_dir(self) -> Path:
        return self.root / "stages"

    @property
    def summary_path(self) -> Path:
        return self.root / "summary.csv"

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    def failure_path(self, run_id: str) -> Path:
        return self.failed_dir / f"{run_id}.json"

    def new_partial_dir(self, run_id: str) -> Path:
        """A fresh private folder for a run in progress, named after its owner process."""
        name = (
            f"{PARTIAL_PREFIX}{run_id}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        )
        path = self.runs_dir / name
        path.mkdir(parents=True)
        return path

    def complete_run_ids(self) -> Iterator[str]:
        """IDs of runs whose folder carries its final name (validity is checked separately)."""
        if not self.runs_dir.is_dir():
            return
        for entry in sorted(self.runs_dir.iterdir()):
            if entry.is_dir() and not entry.name.startswith("."):
                yield entry.name

    def load_record(self, run_id: str) -> dict[str, Any]:
        """The validated record of a complete run, or RecordError saying why it is not usable."""
        folder = self.run_dir(run_id)
        record = validate_record(read_json(folder / "record.json"), str(folder / "record.json"))
        for notebook in record.get("notebooks", []):
            validate_executed_notebook(folder / notebook)
        return record

    def publish(self, partial: Path, run_id: str) -> Path:
        """Move a finished partial folder to its final name atomically, replacing an old one."""
        final = self.run_dir(run_id)
        if final.exists():
            # Replaced only on --force or when the old one failed validation.
            trash = self.runs_dir / f"{PARTIAL_PREFIX}old-{run_id}-{uuid.uuid4().hex[:6]}"
            os.rename(final, trash)
            os.rename(partial, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.rename(partial, final)
        self.failure_path(run_id).unlink(missing_ok=True)
        return final

    def discard(self, run_id: str) -> None:
        """Remove a complete-looking run that failed validation, so it is redone."""
        folder = self.run_dir(run_id)
        if folder.exists():
            trash = self.runs_dir / f"{PARTIAL_PREFIX}bad-{run_id}-{uuid.uuid4().hex[:6]}"
            os.rename(folder, trash)
            shutil.rmtree(trash, ignore_errors=True)

    def clean_stale_partials(self) -> list[Path]:
        """Delete partial folders whose owner process on this host is gone; return them."""
        removed = []
        if not self.runs_dir.is_dir():
            return removed
        host = socket.gethostname()
        for entry in self.runs_dir.iterdir():
            if not entry.name.startswith(PARTIAL_PREFIX):
                continue
            owner_pid = _owner_pid(entry.name, host)
            if owner_pid is not None and _pid_alive(owner_pid):
                continue
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
        return removed


def _owner_pid(name: str, host: str) -> int | None:
    parts = name[len(PARTIAL_PREFIX) :].split("-")
    # run_id-host-pid-nonce; hostnames may contain dashes, so read from the right.
    if len(parts) >= 4 and "-".join(parts[1:-2]) == host and parts[-2].isdigit():
        return int(parts[-2])
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

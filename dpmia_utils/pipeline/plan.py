"""Plan a profile against the store: check its data, name its runs, say which are complete.

A run counts as complete only if its record validates, names the run, holds the run's
parameters and lists every run-stage notebook, each of which papermill finished cleanly;
anything less is redone. Nothing here writes to the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..stages.params import GridError
from .codeversion import RUN_STAGES
from .profiles import Profile, RunSpec, run_id
from .store import ProfileStore, RecordError


class ProfileDataError(GridError):
    """A profile's data block points at data that cannot be read; the message names the file."""


def data_checksum_for(profile: Profile) -> str:
    """The checksum of the data a profile uses (raw archives, or the synthetic recipe)."""
    from ..stages import data_fingerprint

    return data_fingerprint(profile.blocks["data"])


def check_profile_data(profile: Profile, load: bool = True) -> str:
    """Checksum (and, with `load`, read and validate) the profile's data in this process.

    Raises ProfileDataError naming the profile and the data file, so a malformed file stops
    the grid before any worker, kernel or results folder exists.
    """
    from ..data import DataError
    from ..stages import load_dataset

    try:
        checksum = data_checksum_for(profile)
        if load:
            # Parsing the files here also warms the cache the stage notebooks read next.
            load_dataset(profile.blocks["data"], progress=False)
    except (DataError, OSError) as exc:
        message = " ".join(str(exc).split())  # one line, whatever the parser's message
        raise ProfileDataError(f"{profile.path.name}: data: {message}") from None
    return checksum


@dataclass
class PlannedRun:
    """A run of the grid with its ID and its state in the store."""

    spec: RunSpec
    run_id: str
    # "complete", "pending", "failed" (recorded failure), "invalid" (bad record), or
    # "published" (done and published with the repository, not in this store)
    status: str
    reason: str = ""


#: The statuses of runs the grid does not execute again (unless --force).
DONE_STATUSES = ("complete", "published")


def plan_runs(
    profile: Profile,
    store: ProfileStore,
    data_checksum: str,
    version: str,
    force: bool = False,
    published: ProfileStore | None = None,
) -> list[PlannedRun]:
    """Name every run of the profile and say whether the store already holds it complete.

    A run folder that does not pass `load_complete_record` is "invalid" (and redone), with
    the reason; `force` makes complete runs pending again. With a `published` store, a run
    not complete here whose record is published under the same ID (same parameters, code and
    data) is "published": done, though its notebooks and weights are not in this store.
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
        if status != "complete" and not force and is_published(published, rid, spec.params):
            status, reason = "published", ""
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


def is_published(published: ProfileStore | None, rid: str, params: dict[str, Any]) -> bool:
    """Whether `published` holds the run complete (by the same rules as a results store)."""
    if published is None or not published.run_dir(rid).exists():
        return False
    try:
        load_complete_record(published, rid, params)
    except RecordError:
        return False
    return True

"""Spot check: recompute one published run from scratch and compare it with its record.

A long profile's book is built from its published records, without training. This check ties
those records to the code: one run, recomputed here from the data in a private results root
(so no saved training prefix is read), must give the published numbers.

On the machine and code version that made the record the numbers agree to the bit. Another
machine may round differently (other CPU kernels), and a training then drifts, so the metrics
(accuracies, AUCs, attack advantages and their intervals) may differ by up to ``tolerance``;
what depends on the parameters only (epsilons, delta, steps, training sizes) must agree to
1e-9, relative. A record of another code version cannot be checked: recompute the profile.

:func:`compare_with_published` does the same for every run at once, after a recomputation of
the whole profile (``make results``), without running anything itself.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..jsonio import atomic_write_json
from ..pipeline.codeversion import code_version
from ..pipeline.estimate import estimate_run_seconds
from ..pipeline.plan import load_complete_record
from ..pipeline.profiles import Profile, load_profile
from ..pipeline.store import ProfileStore, RecordError
from ..stages.params import GridError

#: Default largest absolute difference allowed in a metric (see the module docstring).
DEFAULT_TOLERANCE = 0.02
#: Target-record fields compared: the metrics, then what the parameters alone determine.
TARGET_METRICS = (
    "fold_test_accuracy",
    "fold_train_accuracy",
    "test_accuracy_mean",
    "train_accuracy_mean",
    "nonzero_fraction_mean",
)
TARGET_EXACT = ("epsilon", "delta", "steps", "n_train")


class SpotCheckError(RuntimeError):
    """The run cannot be spot-checked (missing, or of another code version)."""


@dataclass
class SpotCheck:
    """The outcome: how many numbers were compared, and those that differ."""

    run_id: str
    label: str
    seconds: float
    tolerance: float
    compared: int = 0
    # (field, published, recomputed, allowed difference)
    differences: list[tuple[str, float, float, float]] = field(default_factory=list)
    # Not recomputed: the stamp of an earlier pass of the same check (its path and date).
    passed_before: tuple[str, str] | None = None

    @property
    def failures(self) -> list[tuple[str, float, float, float]]:
        """The differences beyond what is allowed."""
        return [d for d in self.differences if not abs(d[1] - d[2]) <= d[3]]

    @property
    def ok(self) -> bool:
        """No number differs beyond what is allowed."""
        return not self.failures

    def summary(self) -> str:
        """One paragraph for the terminal."""
        if self.passed_before is not None:
            stamp, when = self.passed_before
            return (
                f"spot check of run {self.run_id} ({self.label}): passed on {when} with this "
                f"record and code version ({self.compared} numbers compared), not recomputed "
                f"(delete {stamp} to redo)."
            )
        largest = max((abs(a - b) for _, a, b, _ in self.differences), default=0.0)
        head = (
            f"spot check of run {self.run_id} ({self.label}), recomputed in "
            f"{self.seconds / 60:.1f} min: {self.compared} numbers compared, "
        )
        if not self.differences:
            return head + "all equal to the bit."
        head += f"{len(self.differences)} differ (largest by {largest:.3g}); "
        if self.ok:
            return head + f"all within the tolerance ({self.tolerance:g} for metrics)."
        lines = [f"  {k}: published {a!r}, recomputed {b!r}" for k, a, b, _ in self.failures]
        return head + f"{len(self.failures)} beyond it:\n" + "\n".join(lines[:20])


def _numbers(value: Any, prefix: str) -> Iterator[tuple[str, float]]:
    """The numeric leaves of a JSON value, with their paths."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _numbers(item, f"{prefix}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _numbers(item, f"{prefix}[{i}]")
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield prefix, float(value)


def compared_numbers(record: dict[str, Any], tolerance: float) -> dict[str, tuple[float, float]]:
    """Every number the check compares: path -> (value, allowed absolute difference).

    Timings and memory are not compared; the exact fields get a relative 1e-9.
    """
    target, numbers = record["target"], {}
    for key in TARGET_METRICS:
        for path, value in _numbers(target.get(key), f"target.{key}"):
            numbers[path] = (value, tolerance)
    for key in TARGET_EXACT:
        for path, value in _numbers(target.get(key), f"target.{key}"):
            numbers[path] = (value, 1e-9 * max(1.0, abs(value)))
    for path, value in _numbers(record["attack"]["attacks"], "attack"):
        if "seconds" not in path:
            numbers[path] = (value, tolerance)
    return numbers


def compare_records(
    published: dict[str, Any], recomputed: dict[str, Any], tolerance: float
) -> tuple[int, list[tuple[str, float, float, float]]]:
    """(numbers compared, differences) between two records of the same run."""
    before = compared_numbers(published, tolerance)
    after = compared_numbers(recomputed, tolerance)
    differences = []
    for path in sorted(set(before) | set(after)):
        (a, allowed), (b, _) = before.get(path, (math.nan, 0.0)), after.get(path, (math.nan, 0.0))
        same = a == b or (math.isnan(a) and math.isnan(b))
        if not same:
            differences.append((path, a, b, allowed))
    return len(before), differences


def cheapest_dp_run(store: ProfileStore, profile: Profile) -> str:
    """The published DP run (else any run) that would take the least time to recompute alone,
    among the runs of the current code version when there are any (only those can be checked)."""
    records = [store.load_record(rid) for rid in store.complete_run_ids()]
    if not records:
        raise SpotCheckError(f"{store.root} holds no complete run to check")
    version = code_version()
    records = [r for r in records if r["provenance"].get("code_version") == version] or records
    dp = [r for r in records if r["params"]["dp"]] or records
    best = min(dp, key=lambda r: estimate_run_seconds(r["params"], profile.blocks))
    return str(best["run_id"])


def _stamp_key(store: ProfileStore, rid: str, version: str, tolerance: float) -> dict[str, Any]:
    """What a passed check depends on: the run's published record, the code and the tolerance."""
    record = store.run_dir(rid) / "record.json"
    digest = hashlib.sha256(record.read_bytes()).hexdigest()
    return {"run_id": rid, "record_sha256": digest, "code_version": version, "tolerance": tolerance}


def _passed_before(stamp: Path | None, key: dict[str, Any]) -> dict[str, Any] | None:
    """The stamp's content when it records a pass of exactly this check, else None."""
    if stamp is None or not stamp.exists():
        return None
    try:
        passed = json.loads(stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # unreadable: check again
    return passed if isinstance(passed, dict) and passed.get("key") == key else None


def spot_check(
    profile_path: str | Path,
    *,
    run_id: str | None = None,
    published_root: Path | None = None,
    tolerance: float | None = None,
    stamp: Path | None = None,
    out: Callable[[str], None] = print,
) -> SpotCheck:
    """Recompute one published run of the profile (default: the cheapest DP run) and compare.

    ``tolerance`` (default :data:`DEFAULT_TOLERANCE`) bounds the metrics' differences. With
    ``stamp``, a check that passes is recorded there (run, record digest, code version,
    tolerance), and the same check is not recomputed while the stamp says it passed: a
    second `make book` reruns nothing that has not changed.
    """
    from ..pipeline.grid import run_grid

    tolerance = DEFAULT_TOLERANCE if tolerance is None else tolerance
    profile = load_profile(profile_path)
    store = ProfileStore.for_published(profile.name, published_root)
    rid = run_id or cheapest_dp_run(store, profile)
    if not store.run_dir(rid).exists():
        raise SpotCheckError(f"{store.root} has no run {rid}")
    published = store.load_record(rid)
    made_by, version = published["provenance"].get("code_version"), code_version()
    if made_by != version:
        raise SpotCheckError(
            f"run {rid} was computed by code version {made_by}, this code is {version}: "
            f"recompute the profile (make results PROFILE={profile.name}) and publish it"
        )
    # GridError if the profile no longer has this run (its parameters changed since).
    label = profile.only_run(dict(published["params"])).label
    key = _stamp_key(store, rid, version, tolerance)
    before = _passed_before(stamp, key)
    if before is not None:
        check = SpotCheck(rid, label, 0.0, tolerance, compared=int(before["compared"]))
        check.passed_before = (str(stamp), str(before["date"]))
        return check
    out(f"spot check: recomputing run {rid} ({label}) from scratch")
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="dpmia-spotcheck-") as scratch:
        report = run_grid(
            profile_path,
            results_root=Path(scratch),
            where=dict(published["params"]),
            skip_published=False,  # the point: recompute the published run
            summarize=False,  # one run's record is compared; no summary or curve fits
            progress=False,
            out=lambda line: None,
        )
        if not report.ok:
            raise SpotCheckError(f"recomputing run {rid} failed: {report.failed}")
        recomputed = ProfileStore.for_profile(profile.name, Path(scratch)).load_record(rid)
    check = SpotCheck(rid, label, time.time() - started, tolerance)
    check.compared, check.differences = compare_records(published, recomputed, tolerance)
    if stamp is not None and check.ok:
        date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        passed = {"key": key, "compared": check.compared, "date": date, "label": label}
        stamp.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(stamp, passed)
    return check


@dataclass
class PublishedComparison:
    """A recomputed profile beside its published records, run by run (matched by parameters)."""

    profile: str
    tolerance: float
    # (published run, recomputed run, label, numbers compared, differences)
    compared: list[tuple[str, str, str, int, list[tuple[str, float, float, float]]]] = field(
        default_factory=list
    )
    not_recomputed: list[str] = field(default_factory=list)

    @property
    def differing(self) -> list[tuple[str, str, str, int, list]]:
        """The runs with a difference beyond what is allowed."""
        return [c for c in self.compared if any(not abs(a - b) <= d for _, a, b, d in c[4])]

    @property
    def ok(self) -> bool:
        return not self.differing

    def summary(self) -> str:
        """A few lines for the terminal: which published runs the recomputation changed."""
        equal = sum(1 for c in self.compared if not c[4])
        lines = [
            f"{self.profile}: {len(self.compared)} published run(s) recomputed: {equal} equal "
            f"to the bit, {len(self.compared) - equal - len(self.differing)} within the "
            f"tolerance ({self.tolerance:g} for metrics), {len(self.differing)} beyond it; "
            f"{len(self.not_recomputed)} not recomputed yet."
        ]
        for published, recomputed, label, _, differences in self.differing:
            worst = max(differences, key=lambda d: abs(d[1] - d[2]))
            lines.append(
                f"  {published} -> {recomputed} ({label}): {len(differences)} number(s) differ, "
                f"e.g. {worst[0]}: published {worst[1]!r}, recomputed {worst[2]!r}"
            )
        return "\n".join(lines)


def compare_with_published(
    profile_path: str | Path,
    *,
    results_root: Path | None = None,
    published_root: Path | None = None,
    tolerance: float | None = None,
) -> PublishedComparison:
    """Compare every published run of the profile with its recomputation in the results store.

    Runs are matched by their parameters, so a recomputation by another code version (another
    run ID) is compared too: that is how a bit-identical code change is shown to be one.
    """
    tolerance = DEFAULT_TOLERANCE if tolerance is None else tolerance
    profile = load_profile(profile_path)
    published = ProfileStore.for_published(profile.name, published_root)
    computed = ProfileStore.for_profile(profile.name, results_root)
    # Recomputations by this code only, whatever the store's summary says: the store may also
    # hold older versions' runs, and a runner stopped mid-grid leaves its summary behind.
    version, by_params = code_version(), {}
    for rid in computed.complete_run_ids():
        try:
            recomputed = load_complete_record(computed, rid)
        except RecordError:
            continue
        if recomputed["provenance"].get("code_version") == version:
            by_params[_params_key(recomputed["params"])] = rid
    comparison = PublishedComparison(profile.name, tolerance)
    for rid in published.complete_run_ids():
        record = published.load_record(rid)
        twin = by_params.get(_params_key(record["params"]))
        if twin is None:
            comparison.not_recomputed.append(rid)
            continue
        count, differences = compare_records(record, computed.load_record(twin), tolerance)
        comparison.compared.append((rid, twin, _label(profile, record), count, differences))
    return comparison


def _label(profile: Profile, record: dict[str, Any]) -> str:
    try:
        return profile.only_run(dict(record["params"])).label
    except GridError:
        return "no longer in the profile"


def _params_key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True)

"""Grid profiles: read `parameters/*.yml`, expand them into named runs.

A profile has shared blocks (``data``, ``split``, ``attack``, ``defaults``) and ``groups``;
each group is a small grid whose list values are crossed (a Cartesian product). Every run
is the merge defaults <- group values, validated against the run-parameter schema
(stages/params.py) before anything executes. A run is named by what defines it
(`run_id`): its parameters, the shared blocks, the data checksum and the code version.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..stages.params import (
    RUN_KEYS,
    UNHASHED_DATA_KEYS,
    GridError,
    check_batch_fits,
    check_known,
    resolve_blocks,
    resolve_run,
)

TOP_KEYS = {"profile", "description", "data", "split", "attack", "defaults", "groups"}


@dataclass(frozen=True)
class RunSpec:
    """One run of the grid: a group name and the complete, validated run parameters."""

    group: str
    params: dict[str, Any]

    @property
    def label(self) -> str:
        """A short human-readable description, e.g. 'cnn l1=0.001352 dp noise=1.0 e50 b16'."""
        p = self.params
        text = f"{p['model']} l1={p['l1']:g}"
        if p.get("loss", "logits") != "logits":
            text += f" loss={p['loss']}"
        if p["dp"]:
            budget = (
                f"eps={p['target_epsilon']:g}"
                if p.get("target_epsilon")
                else f"noise={p['noise_multiplier']:g}"
            )
            text += f" dp {budget}"
        searched = p.get("search") or {}
        for key, short in (("epochs", "e"), ("batch_size", "b")):
            if key not in searched:
                text += f" {short}{p[key]}"
        if searched:
            text += " selected(" + ",".join(searched) + ")"
        return text


@dataclass(frozen=True)
class Profile:
    """A validated grid profile: shared blocks and the expanded list of runs."""

    name: str
    path: Path
    description: str
    blocks: dict[str, dict[str, Any]]
    runs: list[RunSpec] = field(default_factory=list)

    def shared_parameters(self) -> dict[str, Any]:
        """The parameters every stage notebook of this profile receives."""
        return {"profile": self.name, **{name: dict(b) for name, b in self.blocks.items()}}

    def matching(
        self, where: dict[str, Any] | None = None, groups: list[str] | tuple[str, ...] = ()
    ) -> list[RunSpec]:
        """The runs in ``groups`` (all if empty) whose parameters have every ``where`` value.

        GridError for a group or a parameter name the profile does not have.
        """
        unknown = sorted(set(groups) - {r.group for r in self.runs})
        if unknown:
            raise GridError(f"{self.path.name}: no group(s) named {unknown}")
        where = dict(where or {})
        known = set().union(*(r.params for r in self.runs)) if self.runs else set()
        if set(where) - known:
            raise GridError(
                f"{self.path.name}: --where names no run parameter: {sorted(set(where) - known)}"
            )
        return [
            r
            for r in self.runs
            if (not groups or r.group in groups)
            and all(r.params.get(k) == v for k, v in where.items())
        ]

    def only_run(
        self, where: dict[str, Any] | None = None, groups: list[str] | tuple[str, ...] = ()
    ) -> RunSpec:
        """The one run :meth:`matching` picks; GridError naming the matches if not exactly one."""
        runs = self.matching(where, groups)
        if len(runs) != 1:
            shown = "; ".join(r.label for r in runs[:5]) + ("; ..." if len(runs) > 5 else "")
            raise GridError(
                f"{self.path.name}: {len(runs)} runs match, not one"
                + (f" ({shown}); add --where KEY=VALUE to pick one" if runs else "")
            )
        return runs[0]

    def notebook_parameters(self, run: RunSpec) -> dict[str, Any]:
        """What the runner passes a stage notebook for ``run`` (all but its ``run_dir``)."""
        return {**self.shared_parameters(), "run": dict(run.params)}


def _expand_group(where: str, group: dict[str, Any]) -> list[dict[str, Any]]:
    axes = {k: (v if isinstance(v, list) else [v]) for k, v in group.items()}
    for key, values in axes.items():
        if not values:
            raise GridError(f"{where}: '{key}' is an empty list, so the group has no runs")
    keys = list(axes)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*axes.values())]


def parse_profile(text: str, path: Path | str = "<string>") -> Profile:
    """Validate a profile's YAML text and expand it into runs; raise GridError on any problem."""
    path = Path(path)
    name = path.name
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise GridError(f"{name}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise GridError(f"{name}: expected a mapping at the top level, got {type(raw).__name__}")
    check_known(name, set(raw), TOP_KEYS)
    blocks = resolve_blocks(name, raw)

    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise GridError(f"{name}: 'defaults' must be a mapping")
    check_known(f"{name}: defaults", set(defaults), set(RUN_KEYS))
    groups = raw.get("groups")
    if not groups or not isinstance(groups, list):
        raise GridError(f"{name}: 'groups' must be a non-empty list of run groups (empty grid)")

    runs: list[RunSpec] = []
    for index, group in enumerate(groups):
        if not isinstance(group, dict):
            raise GridError(f"{name}: groups[{index}] must be a mapping")
        group = dict(group)
        group_name = str(group.pop("name", f"group{index}"))
        where = f"{name}: group '{group_name}'"
        check_known(where, set(group), set(RUN_KEYS))
        for combo in _expand_group(where, group):
            runs.append(RunSpec(group=group_name, params=resolve_run(where, {**defaults, **combo})))

    _check_batch_fits(name, blocks, runs)
    seen: dict[str, RunSpec] = {}
    for run in runs:
        key = json.dumps(run.params, sort_keys=True)
        if key in seen:
            raise GridError(f"{name}: run {run.label} appears twice (groups overlap)")
        seen[key] = run
    return Profile(
        name=str(raw.get("profile") or path.stem),
        path=path,
        description=str(raw.get("description", "")),
        blocks=blocks,
        runs=runs,
    )


def _check_batch_fits(name: str, blocks: dict[str, dict[str, Any]], runs: list[RunSpec]) -> None:
    """Refuse batches larger than the smallest training set the grid can produce, when known."""
    for run in runs:
        check_batch_fits(f"{name}: run {run.label}", blocks, run.params)


def load_profile(path: str | Path) -> Profile:
    """Read and validate a profile file (e.g. parameters/quick.yml)."""
    path = Path(path)
    if not path.is_file():
        raise GridError(f"{path}: no such profile file")
    return parse_profile(path.read_text(), path)


def hashed_blocks(shared: dict[str, Any]) -> dict[str, Any]:
    """The shared blocks as a run ID sees them: without the keys that only pick the raw data,
    which the data checksum names by content (stages.params.UNHASHED_DATA_KEYS)."""
    if "data" not in shared:
        return shared
    data = {k: v for k, v in shared["data"].items() if k not in UNHASHED_DATA_KEYS}
    return {**shared, "data": data}


def run_id(
    params: dict[str, Any], shared: dict[str, Any], data_checksum: str, code_version: str
) -> str:
    """Name a run by what defines it: parameters, shared blocks, data checksum and code version."""
    payload = json.dumps(
        {
            "run": params,
            "shared": hashed_blocks(shared),
            "data": data_checksum,
            "code": code_version,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:12]

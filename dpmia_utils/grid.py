"""Grid profiles: parse and validate `parameters/*.yml`, expand them into named runs.

A profile has shared blocks (``data``, ``split``, ``attack``, ``defaults``) and ``groups``;
each group is a small grid whose list values are crossed (a Cartesian product). Every run
is the merge defaults <- group values, validated against RUN_KEYS before anything executes,
so a typo fails in a second with the file and key named, not an hour into a grid.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .selection import SEARCHABLE


class GridError(ValueError):
    """A grid profile is malformed; the message names the file, the place and the problem."""


@dataclass(frozen=True)
class Key:
    """The type and allowed range of one parameter."""

    kind: type | tuple[type, ...]
    check: Any = None  # callable(value) -> bool
    rule: str = ""
    choices: tuple | None = None


def _positive(v: float) -> bool:
    return v > 0


def _non_negative(v: float) -> bool:
    return v >= 0


NUMBER = (int, float)

RUN_KEYS: dict[str, Key] = {
    "model": Key(str, choices=("lasso", "cnn")),
    "l1": Key(NUMBER, _non_negative, "must be >= 0"),
    "n_kernels": Key(int, _positive, "must be a positive integer"),
    "kernel_size": Key(int, _positive, "must be a positive integer"),
    "dropout": Key(NUMBER, lambda v: 0 <= v < 1, "must be in [0, 1)"),
    "dp": Key(bool),
    "learning_rate": Key(NUMBER, _positive, "must be > 0"),
    "batch_size": Key(int, _positive, "must be a positive integer"),
    "epochs": Key(int, _positive, "must be a positive integer"),
    "noise_multiplier": Key(NUMBER, _non_negative, "must be >= 0"),
    "target_epsilon": Key(NUMBER, _positive, "must be > 0"),
    "l2_clip": Key(NUMBER, _positive, "must be > 0"),
    "microbatch_fraction": Key(NUMBER, lambda v: 0 < v <= 1, "must be in (0, 1]"),
    "sampling": Key(str, choices=("poisson", "shuffle")),
    "engine": Key(str, choices=("fast", "reference")),
    "loss": Key(str, choices=("logits", "paper-double-sigmoid")),
    "search": Key((dict, type(None))),
    "seed": Key(int, _non_negative, "must be >= 0"),
}


BLOCK_KEYS: dict[str, dict[str, Key]] = {
    "data": {
        "source": Key(str, choices=("yeast", "synthetic")),
        "data_dir": Key((str, type(None))),
        "trait": Key(str),
        "binarize": Key(str, choices=("mean", "median", "threshold")),
        "threshold": Key((int, float, type(None))),
        "balance": Key(bool),
        "max_samples": Key((int, type(None)), lambda v: v is None or v > 1, "must be > 1"),
        "max_variants": Key((int, type(None)), lambda v: v is None or v > 0, "must be > 0"),
        "synthetic_samples": Key(int, lambda v: v >= 20, "must be >= 20"),
        "synthetic_variants": Key(int, lambda v: v >= 10, "must be >= 10"),
        "seed": Key(int, _non_negative, "must be >= 0"),
    },
    "split": {
        "seed": Key(int, _non_negative, "must be >= 0"),
        "folds": Key(int, lambda v: v >= 2, "must be >= 2"),
        "target_fraction": Key(NUMBER, lambda v: 0 < v < 1, "must be in (0, 1)"),
        "shadow_in_fraction": Key(NUMBER, lambda v: 0 < v < 1, "must be in (0, 1)"),
    },
    "attack": {
        "repeats": Key(int, _positive, "must be a positive integer"),
        "attacks": Key(list),
        "reference_models": Key(int, lambda v: v >= 2, "must be >= 2"),
        "online": Key(bool),
        "black_box": Key(bool),
        "n_bootstrap": Key(int, lambda v: v >= 100, "must be >= 100"),
    },
}

KNOWN_ATTACKS = ("shadow", "loss", "lira")

#: Values a profile gets when it does not say otherwise.
BLOCK_DEFAULTS: dict[str, dict[str, Any]] = {
    "data": {
        "source": "yeast",
        "data_dir": None,
        "trait": "CopperSulfate",
        "binarize": "mean",
        "threshold": None,
        "balance": False,
        "max_samples": None,
        "max_variants": None,
        "synthetic_samples": 400,
        "synthetic_variants": 300,
        "seed": 0,
    },
    # shadow_in_fraction 0.5: the authors' mia.ShadowModelBundle trains the shadow model on half
    # of the adversary's data and uses the other half as "out" (50% in / 50% out).
    "split": {"seed": 0, "folds": 5, "target_fraction": 0.5, "shadow_in_fraction": 0.5},
    "attack": {
        "repeats": 5,
        "attacks": list(KNOWN_ATTACKS),
        "reference_models": 8,
        "online": False,
        "black_box": False,
        "n_bootstrap": 1000,
    },
}
RUN_DEFAULTS: dict[str, Any] = {
    "model": "lasso",
    "l1": 0.0,
    "n_kernels": 16,
    "kernel_size": 9,
    "dropout": 0.0,
    "dp": False,
    "learning_rate": 0.01,
    "batch_size": 16,
    "epochs": 50,
    "noise_multiplier": None,
    "target_epsilon": None,
    "l2_clip": 1.0,
    "microbatch_fraction": 1.0,
    "sampling": "poisson",
    "engine": "fast",
    "loss": "logits",
    "search": None,
    "seed": 0,
}
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


def _type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join("null" if k is type(None) else k.__name__ for k in kinds)


def _check_value(where: str, key: str, value: Any, spec: Key) -> None:
    kinds = spec.kind if isinstance(spec.kind, tuple) else (spec.kind,)
    # bool is an int in Python; a YAML `true` must not pass for a batch size.
    ok_type = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if isinstance(value, float) and int in kinds and float not in kinds:
        ok_type = False
    if not ok_type:
        raise GridError(
            f"{where}: '{key}' must be {_type_name(spec.kind)}, got {value!r} "
            f"({type(value).__name__})"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise GridError(f"{where}: '{key}' must be finite, got {value!r}")
    if spec.choices is not None and value not in spec.choices:
        raise GridError(f"{where}: '{key}' must be one of {list(spec.choices)}, got {value!r}")
    if spec.check is not None and value is not None and not spec.check(value):
        raise GridError(f"{where}: '{key}' {spec.rule}, got {value!r}")


def _unknown(where: str, keys: set[str], allowed: set[str]) -> None:
    extra = sorted(keys - allowed)
    if extra:
        raise GridError(f"{where}: unknown key(s) {extra}; allowed: {sorted(allowed)}")


def _validate_search(where: str, search: dict[str, Any]) -> None:
    """A search maps searchable parameters to non-empty lists of valid values."""
    _unknown(f"{where}: search", set(search), set(SEARCHABLE))
    for key, values in search.items():
        if not isinstance(values, list) or not values:
            raise GridError(f"{where}: search '{key}' must be a non-empty list, got {values!r}")
        for value in values:
            _check_value(f"{where}: search", key, value, RUN_KEYS[key])


def _validate_run(where: str, params: dict[str, Any]) -> None:
    for key, value in params.items():
        if value is None and key in ("noise_multiplier", "target_epsilon", "search"):
            continue
        _check_value(where, key, value, RUN_KEYS[key])
    if params["search"]:
        _validate_search(where, params["search"])
    if params["dp"]:
        has_noise = params["noise_multiplier"] is not None
        has_target = params["target_epsilon"] is not None
        if has_noise == has_target:
            raise GridError(
                f"{where}: a DP run needs exactly one of 'noise_multiplier' or 'target_epsilon'"
            )
    elif params["noise_multiplier"] not in (None, 0) or params["target_epsilon"] is not None:
        raise GridError(f"{where}: 'noise_multiplier'/'target_epsilon' given but dp is false")


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
    _unknown(name, set(raw), TOP_KEYS)

    blocks: dict[str, dict[str, Any]] = {}
    for block, keys in BLOCK_KEYS.items():
        given = raw.get(block) or {}
        if not isinstance(given, dict):
            raise GridError(f"{name}: '{block}' must be a mapping")
        _unknown(f"{name}: {block}", set(given), set(keys))
        merged = {**copy.deepcopy(BLOCK_DEFAULTS[block]), **given}
        for key, value in merged.items():
            _check_value(f"{name}: {block}", key, value, keys[key])
        blocks[block] = merged
    unknown_attacks = sorted(set(blocks["attack"]["attacks"]) - set(KNOWN_ATTACKS))
    if unknown_attacks or not blocks["attack"]["attacks"]:
        raise GridError(
            f"{name}: attack.attacks must be a non-empty list from {list(KNOWN_ATTACKS)}, "
            f"got {blocks['attack']['attacks']!r}"
        )

    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise GridError(f"{name}: 'defaults' must be a mapping")
    _unknown(f"{name}: defaults", set(defaults), set(RUN_KEYS))
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
        _unknown(where, set(group), set(RUN_KEYS))
        for combo in _expand_group(where, group):
            params = {**RUN_DEFAULTS, **defaults, **combo}
            _validate_run(where, params)
            runs.append(RunSpec(group=group_name, params=params))

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
    data = blocks["data"]
    n = data["max_samples"] or (
        data["synthetic_samples"] if data["source"] == "synthetic" else None
    )
    if n is None:
        return
    split = blocks["split"]
    # Smallest training set: a shadow model's 80% of the shadow half, or a CV fold's training part.
    target = n * split["target_fraction"]
    n_train = min(target * (1 - 1 / split["folds"]), (n - target) * split["shadow_in_fraction"])
    for run in runs:
        batch_size = max((run.params["search"] or {}).get("batch_size", [run.params["batch_size"]]))
        if batch_size > n_train:
            raise GridError(
                f"{name}: run {run.label}: batch_size {batch_size} is larger than "
                f"the smallest training set ({int(n_train)} individuals)"
            )


def load_profile(path: str | Path) -> Profile:
    """Read and validate a profile file (e.g. parameters/quick.yml)."""
    path = Path(path)
    if not path.is_file():
        raise GridError(f"{path}: no such profile file")
    return parse_profile(path.read_text(), path)


def run_id(
    params: dict[str, Any], shared: dict[str, Any], data_checksum: str, code_version: str
) -> str:
    """Name a run by what defines it: parameters, shared blocks, data checksum and code version."""
    payload = json.dumps(
        {"run": params, "shared": shared, "data": data_checksum, "code": code_version},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def resolve_parameters(
    data: dict[str, Any] | None = None,
    split: dict[str, Any] | None = None,
    attack: dict[str, Any] | None = None,
    run: dict[str, Any] | None = None,
    where: str = "notebook parameters",
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Complete and validate a notebook's parameters exactly as a profile's would be."""
    document = {
        "data": data or {},
        "split": split or {},
        "attack": attack or {},
        "groups": [{"name": "notebook", **(run or {})}],
    }
    profile = parse_profile(yaml.safe_dump(document), where)
    return profile.blocks, profile.runs[0].params

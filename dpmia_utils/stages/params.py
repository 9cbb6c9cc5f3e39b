"""The run-parameter schema: every key a run or a shared block may set, its type and its range.

A notebook completes and validates its parameters here (`resolve_parameters`), exactly as a
grid profile's runs are (pipeline/profiles.py builds on the same checks), so a typo fails in a
second with the place and the key named, not an hour into a grid. Every key changes what a run
computes; the keys that only pick the raw data are named by the data checksum instead of the
run ID (see `UNHASHED_DATA_KEYS`).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import yaml

from ..constants import ATTACK_NAMES, SEARCHABLE, SHADOW_REFERENCES


class GridError(ValueError):
    """Parameters (a grid profile's, or a notebook's) are malformed; the message names the
    file or place, the key and the problem."""


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
        # LiRA's reference models: how many to train, or "shadow" (the shadow attack's).
        "reference_models": Key(
            (int, str),
            lambda v: v == SHADOW_REFERENCES or (isinstance(v, int) and v >= 2),
            f"must be an integer >= 2 or {SHADOW_REFERENCES!r}",
        ),
        "black_box": Key(bool),
        "n_bootstrap": Key(int, lambda v: v >= 100, "must be >= 100"),
    },
}

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
        "attacks": list(ATTACK_NAMES),
        "reference_models": 8,
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

#: Data keys that only pick the raw data (where it lies, or the synthetic recipe's size): the
#: data checksum (stages' data_fingerprint: the raw archives' bytes, or the synthetic recipe)
#: names that data by content, so a run ID leaves them out and moving the data reruns nothing.
UNHASHED_DATA_KEYS: tuple[str, ...] = ("data_dir", "synthetic_samples", "synthetic_variants")


def _type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join("null" if k is type(None) else k.__name__ for k in kinds)


def check_value(where: str, key: str, value: Any, spec: Key) -> None:
    """Raise GridError unless `value` has the type and lies in the range `spec` allows."""
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


def check_known(where: str, keys: set[str], allowed: set[str]) -> None:
    """Raise GridError naming the keys that are not in `allowed`."""
    extra = sorted(keys - allowed)
    if extra:
        raise GridError(f"{where}: unknown key(s) {extra}; allowed: {sorted(allowed)}")


def _validate_search(where: str, search: dict[str, Any]) -> None:
    """A search maps searchable parameters to non-empty lists of valid values."""
    # Imported here: the training package loads TensorFlow, which checking a profile (the
    # command line's first step, and its one-line errors) must not wait for.

    check_known(f"{where}: search", set(search), set(SEARCHABLE))
    for key, values in search.items():
        if not isinstance(values, list) or not values:
            raise GridError(f"{where}: search '{key}' must be a non-empty list, got {values!r}")
        for value in values:
            check_value(f"{where}: search", key, value, RUN_KEYS[key])


def resolve_blocks(name: str, raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The shared blocks (data, split, attack) of `raw`, completed with defaults and checked."""
    blocks: dict[str, dict[str, Any]] = {}
    for block, keys in BLOCK_KEYS.items():
        given = raw.get(block) or {}
        if not isinstance(given, dict):
            raise GridError(f"{name}: '{block}' must be a mapping")
        check_known(f"{name}: {block}", set(given), set(keys))
        merged = {**copy.deepcopy(BLOCK_DEFAULTS[block]), **given}
        for key, value in merged.items():
            check_value(f"{name}: {block}", key, value, keys[key])
        blocks[block] = merged
    unknown_attacks = sorted(set(blocks["attack"]["attacks"]) - set(ATTACK_NAMES))
    if unknown_attacks or not blocks["attack"]["attacks"]:
        raise GridError(
            f"{name}: attack.attacks must be a non-empty list from {list(ATTACK_NAMES)}, "
            f"got {blocks['attack']['attacks']!r}"
        )
    attack = blocks["attack"]
    if attack["reference_models"] == SHADOW_REFERENCES and "lira" in attack["attacks"]:
        if "shadow" not in attack["attacks"] or attack["repeats"] < 2:
            raise GridError(
                f"{name}: attack.reference_models {SHADOW_REFERENCES!r} makes LiRA use the shadow "
                f"attack's models: attack.attacks must include 'shadow' and attack.repeats be "
                f">= 2, got {attack['attacks']!r} and {attack['repeats']}"
            )
    return blocks


def resolve_run(where: str, values: dict[str, Any]) -> dict[str, Any]:
    """One run's complete parameters: the defaults, then `values`; checked key by key."""
    check_known(where, set(values), set(RUN_KEYS))
    params = {**RUN_DEFAULTS, **values}
    for key, value in params.items():
        if value is None and key in ("noise_multiplier", "target_epsilon", "search"):
            continue
        check_value(where, key, value, RUN_KEYS[key])
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
    return params


def check_batch_fits(where: str, blocks: dict[str, dict[str, Any]], params: dict[str, Any]) -> None:
    """Refuse a batch larger than the smallest training set the blocks produce, when known."""
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
    batch_size = max((params["search"] or {}).get("batch_size", [params["batch_size"]]))
    if batch_size > n_train:
        raise GridError(
            f"{where}: batch_size {batch_size} is larger than "
            f"the smallest training set ({int(n_train)} individuals)"
        )


def resolve_parameters(
    data: dict[str, Any] | None = None,
    split: dict[str, Any] | None = None,
    attack: dict[str, Any] | None = None,
    run: dict[str, Any] | None = None,
    where: str = "notebook parameters",
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Complete and validate a notebook's parameters exactly as a profile's would be.

    The values go through YAML first, as a profile's do, so that mappings (a ``search``)
    arrive with their keys in the same (sorted) order either way.
    """
    raw = yaml.safe_load(
        yaml.safe_dump({"data": data or {}, "split": split or {}, "attack": attack or {}})
    )
    values = yaml.safe_load(yaml.safe_dump(dict(run or {})))
    blocks = resolve_blocks(where, raw)
    params = resolve_run(f"{where}: run", values)
    check_batch_fits(f"{where}: run", blocks, params)
    return blocks, params

"""Estimate how long a run takes, from measured per-epoch costs, for `run --dry-run`."""

from __future__ import annotations

import statistics
from typing import Any

from ..constants import PAPER_TRAINING_ROWS, YEAST_SEGREGANTS_MEASURED, YEAST_VARIANTS
from .store import ProfileStore, RecordError

#: Seconds per epoch of the default ("fast") engine on a real-size training fold (1,504 x 28,220
#: values), CNN with 16 kernels of 9, 2-core machine, measured with `python -m dpmia_utils bench`
#: (quiet runs on random and real data); keyed by (model, dp). Replaced by the median of the
#: store's own measurements once complete runs of the same kind exist.
DEFAULT_SECONDS_PER_EPOCH: dict[tuple[str, bool], float] = {
    ("lasso", False): 0.07,
    ("lasso", True): 0.10,
    ("cnn", False): 1.3,
    ("cnn", True): 2.0,
}
REFERENCE_CELLS = PAPER_TRAINING_ROWS * YEAST_VARIANTS
#: Kernel start-up, TensorFlow import and data loading for the two stage notebooks.
OVERHEAD_SECONDS = 30.0


def models_per_run(blocks: dict[str, dict[str, Any]]) -> int:
    """How many models one run trains: CV folds, shadow models and LiRA reference models."""
    attack = blocks["attack"]
    n = blocks["split"]["folds"]
    if "shadow" in attack["attacks"]:
        n += attack["repeats"]
    if "lira" in attack["attacks"]:
        n += attack["reference_models"]
    return n


def _data_cells(blocks: dict[str, dict[str, Any]]) -> float:
    data = blocks["data"]
    if data["source"] == "synthetic":
        n, p = data["synthetic_samples"], data["synthetic_variants"]
    else:
        n = data["max_samples"] or YEAST_SEGREGANTS_MEASURED
        p = data["max_variants"] or YEAST_VARIANTS
    n_train = n * blocks["split"]["target_fraction"] * (1 - 1 / blocks["split"]["folds"])
    return n_train * p


def measured_seconds_per_epoch(store: ProfileStore) -> dict[tuple[str, bool], float]:
    """Median per-epoch seconds (scaled to the reference size) from complete runs in the store."""
    samples: dict[tuple[str, bool], list[float]] = {}
    for rid in store.complete_run_ids():
        try:
            record = store.load_record(rid)
        except RecordError:
            continue
        per_epoch = record["target"].get("seconds_per_epoch")
        cells = record["target"].get("train_cells")
        if per_epoch and cells:
            key = (record["params"]["model"], bool(record["params"]["dp"]))
            samples.setdefault(key, []).append(per_epoch * REFERENCE_CELLS / cells)
    return {key: statistics.median(values) for key, values in samples.items()}


def cost_table(store: ProfileStore | None = None) -> dict[tuple[str, bool], float]:
    """Per-epoch costs: the defaults, overridden by what the store has measured."""
    costs = dict(DEFAULT_SECONDS_PER_EPOCH)
    if store is not None:
        costs.update(measured_seconds_per_epoch(store))
    return costs


def estimate_run_seconds(
    params: dict[str, Any],
    blocks: dict[str, dict[str, Any]],
    costs: dict[tuple[str, bool], float] = DEFAULT_SECONDS_PER_EPOCH,
) -> float:
    """Estimated wall time of one run in seconds."""
    per_epoch = costs[(params["model"], bool(params["dp"]))] * _data_cells(blocks) / REFERENCE_CELLS
    if params["model"] == "cnn":
        # Cost grows less than linearly with kernel area: 8 kernels of 5 (28% of the area of
        # 16 of 9) measured at 55-72% of the time.
        per_epoch *= 0.5 + 0.5 * params["n_kernels"] * params["kernel_size"] / (16 * 9)
    return OVERHEAD_SECONDS + models_per_run(blocks) * params["epochs"] * per_epoch

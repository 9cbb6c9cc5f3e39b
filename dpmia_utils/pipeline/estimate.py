"""Estimate how long a run takes, from measured per-epoch costs, for `run --dry-run`."""

from __future__ import annotations

import math
import os
import statistics
from typing import Any

from ..constants import (
    PAPER_TRAINING_ROWS,
    SHADOW_REFERENCES,
    YEAST_SEGREGANTS_MEASURED,
    YEAST_VARIANTS,
)
from .execute import LASSO_THREADS
from .store import ProfileStore, RecordError

#: Seconds per training epoch of the default ("fast") engine on a real-size training fold
#: (1,504 x 28,220 values) on this 2-core machine, keyed by (model, dp); the CNN is the
#: authors' as the paper profile runs it (8 kernels of 5, dropout 0.25). Measured quietly on
#: the real data (as coded), shuffled batches: DP CNN 1.17 s (batch 8) and 1.12 s (16), plain
#: CNN 0.85 and 0.70 s (TensorFlow on 2 threads); the Lasso runs on one thread. Replaced by
#: the median of the store's own measurements once complete runs of the same kind exist.
DEFAULT_SECONDS_PER_EPOCH: dict[tuple[str, bool], float] = {
    ("lasso", False): 0.07,
    ("lasso", True): 0.10,
    ("cnn", False): 0.78,
    ("cnn", True): 1.15,
}
#: Seconds per epoch of scoring a CV training's held-out fold (376 x 28,220 values: the
#: validation history that selection and the learning curves read), by model. The CNN's
#: scoring through the Keras layers cost 0.26 s in the paper quarter's runs (code
#: 0fe06e2bf587de51); the training engine's pass, which predict_logits runs since
#: b69a44665608c87a, took 0.4x the Keras layers' time side by side (0.09-0.14 s against
#: 0.27-0.29 s for 376 rows, both under load). Replaced by the store's measurements.
DEFAULT_EVAL_SECONDS_PER_EPOCH: dict[str, float] = {"lasso": 0.01, "cnn": 0.11}
#: The CNN the costs above are for: (kernels, kernel size).
REFERENCE_CNN = (8, 5)
REFERENCE_CELLS = PAPER_TRAINING_ROWS * YEAST_VARIANTS
#: The as-coded trait's minority class (1_Diamide_1 > 0): balancing keeps twice this many.
DIAMIDE_MINORITY = 1881
#: A 5-fold held-out fold of the as-coded target half (1,881 - 1,504 rows) x the variants.
REFERENCE_EVAL_CELLS = (DIAMIDE_MINORITY - PAPER_TRAINING_ROWS) * YEAST_VARIANTS
#: Kernel start-up, TensorFlow import and data loading for the two stage notebooks.
OVERHEAD_SECONDS = 30.0


def target_model_epochs(params: dict[str, Any], folds: int) -> int:
    """Epochs of training the target stage runs: CV folds, times the search's trainings.

    A search trains each combination of its non-epoch values once per fold, for the longest of
    its epochs (shorter candidates are read off the same trajectory, as
    training.selection does), unless the run's noise depends on its epochs (a target epsilon).
    """
    search = params.get("search") or {}
    epochs = search.get("epochs", [params["epochs"]])
    shared = not (params["dp"] and params.get("target_epsilon") is not None)
    combinations = math.prod(len(v) for k, v in search.items() if k != "epochs" or not shared)
    per_combination = max(epochs) if shared else sum(epochs) / len(epochs)
    return int(folds * combinations * per_combination)


def attack_model_epochs(params: dict[str, Any], blocks: dict[str, dict[str, Any]]) -> int:
    """Epochs of the attack stage's models (shadow and LiRA reference), at the run's epochs."""
    attack = blocks["attack"]
    models = attack["repeats"] * ("shadow" in attack["attacks"])
    if attack["reference_models"] != SHADOW_REFERENCES:  # else LiRA reuses the shadow models
        models += attack["reference_models"] * ("lira" in attack["attacks"])
    return models * params["epochs"]


def _prefix_shareable(params: dict[str, Any]) -> bool:
    """Whether a run's trainings are prefixes of a longer sibling's (training.checkpoints):
    not when a search selects the epochs, nor when the noise depends on them. (A search over
    other settings is shared: every candidate trains at the run's epochs.)"""
    searched_epochs = "epochs" in (params.get("search") or {})
    return not searched_epochs and not (params["dp"] and params.get("target_epsilon") is not None)


def shared_prefix_epochs(
    runs: list[dict[str, Any]], complete: list[bool] | None = None
) -> list[int]:
    """For each run, the epochs it reads off a sibling's saved prefix instead of training.

    Siblings are runs equal but for their epochs. Counted so that a group's total is its
    longest run's epochs whatever order the runs execute in: each run is charged from the
    next shorter sibling's epochs (50 and 100 epochs: 50 each). A run with a ``complete``
    sibling at least as long reads all of its epochs off that sibling's saved trajectory
    (the runner keeps it), so it is charged none (a 50-epoch run whose 100-epoch sibling is
    done).
    """
    done = complete if complete is not None else [False] * len(runs)
    # A run's sibling key: its parameters but the epochs (None when it shares nothing).
    keys = [
        repr(sorted((k, repr(v)) for k, v in params.items() if k != "epochs"))
        if _prefix_shareable(params)
        else None
        for params in runs
    ]
    groups: dict[str, list[int]] = {}
    computed: dict[str, list[int]] = {}
    for key, params, finished in zip(keys, runs, done, strict=True):
        if key is not None:
            groups.setdefault(key, []).append(int(params["epochs"]))
            if finished:
                computed.setdefault(key, []).append(int(params["epochs"]))

    def shared(key: str | None, epochs: int, finished: bool) -> int:
        if key is None:
            return 0
        # (A complete run is shown at what it cost, not at what it would cost now.)
        if not finished and any(e >= epochs for e in computed.get(key, [])):
            return epochs
        return max((e for e in groups[key] if e < epochs), default=0)

    return [
        shared(key, int(params["epochs"]), finished)
        for key, params, finished in zip(keys, runs, done, strict=True)
    ]


def _rows(blocks: dict[str, dict[str, Any]]) -> tuple[float, float, float]:
    """(rows of a CV training fold, rows of an attack model, variants)."""
    data, split = blocks["data"], blocks["split"]
    if data["source"] == "synthetic":
        n, p = data["synthetic_samples"], data["synthetic_variants"]
    else:
        n = data["max_samples"] or YEAST_SEGREGANTS_MEASURED
        p = data["max_variants"] or YEAST_VARIANTS
        if data.get("balance"):
            # The as-coded data: the minority class twice (1,881 x 2 for Diamide at > 0).
            n = min(n, 2 * DIAMIDE_MINORITY)
    target = n * split["target_fraction"]
    # Shadow and LiRA reference models train on half of the adversary's (shadow) half.
    return target * (1 - 1 / split["folds"]), (n - target) * split["shadow_in_fraction"], p


def kernel_factor(params: dict[str, Any]) -> float:
    """A CNN's per-epoch cost relative to the reference CNN's (1 for the Lasso).

    Cost grows less than linearly with the kernel area: 8 kernels of 5 (28% of the area of 16
    of 9) measured at 55-72% of the time of 16 of 9.
    """
    if params["model"] != "cnn":
        return 1.0

    def cost(kernels: int, size: int) -> float:
        return 0.5 + 0.5 * kernels * size / (16 * 9)

    return cost(params["n_kernels"], params["kernel_size"]) / cost(*REFERENCE_CNN)


def measured_costs(
    store: ProfileStore, code_version: str | None = None
) -> tuple[dict[tuple[str, bool], float], dict[str, float]]:
    """Median per-epoch training and evaluation seconds (at the reference sizes and CNN) from
    the complete runs in the store that computed all of their epochs, timed alone
    (:func:`timed_alone`) and, given ``code_version``, computed by that code (another
    version's costs may differ)."""
    train: dict[tuple[str, bool], list[float]] = {}
    evaluation: dict[str, list[float]] = {}
    for rid in store.complete_run_ids():
        try:
            record = store.load_record(rid)
        except RecordError:
            continue
        provenance = record.get("provenance", {})
        if code_version and provenance.get("code_version") != code_version:
            continue
        if not timed_alone(provenance):
            continue
        target, params = record["target"], record["params"]
        per_epoch, cells = target.get("seconds_per_epoch"), target.get("train_cells")
        if not per_epoch or not cells or any(target.get("resumed_epochs") or []):
            continue
        scale = REFERENCE_CELLS / cells / kernel_factor(params)
        train.setdefault((params["model"], bool(params["dp"])), []).append(per_epoch * scale)
        # What the CV trainings spent beyond their epochs: scoring the held-out fold.
        epochs = target["folds"] * target["params_trained"]["config"]["epochs"]
        extra = target["seconds"] / epochs - per_epoch if epochs else 0.0
        held_out = target["dataset"]["n_samples"] / 2 - target["n_train"]  # rows of one fold
        if extra > 0 and held_out > 0:
            eval_cells = held_out * target["n_variants"]
            evaluation.setdefault(params["model"], []).append(
                extra * REFERENCE_EVAL_CELLS / eval_cells / kernel_factor(params)
            )
    return (
        {key: statistics.median(v) for key, v in train.items()},
        {key: statistics.median(v) for key, v in evaluation.items()},
    )


#: A run counts as timed alone when its kernels got at least this share of the cores their
#: threads could use (CPU seconds over wall seconds, against min(threads, cores)).
ALONE_SHARE = 0.75


def timed_alone(provenance: dict[str, Any]) -> bool:
    """Whether a run's timings are its own, not those of a run sharing the cores with others.

    Its kernels' CPU time over its wall time is the cores it got on average. Beside another
    run (two CNN runs share 2 cores: about 1 each, against nearly 2 alone) the share drops and
    so would every estimate made from its per-epoch times. Records without the CPU time (made
    before the runner kept it) are not used either: the defaults stand in.
    """
    cpu, wall = provenance.get("kernel_cpu_seconds"), provenance.get("seconds")
    if not cpu or not wall:
        return False
    threads = int(provenance.get("tf_threads") or 1)
    return cpu / wall >= ALONE_SHARE * min(threads, os.cpu_count() or 1)


def cost_tables(
    store: ProfileStore | None = None, code_version: str | None = None
) -> tuple[dict[tuple[str, bool], float], dict[str, float]]:
    """Per-epoch training and held-out scoring costs: the defaults, overridden by what the
    store has measured (its records read once; only ``code_version``'s runs, if given)."""
    costs, eval_costs = dict(DEFAULT_SECONDS_PER_EPOCH), dict(DEFAULT_EVAL_SECONDS_PER_EPOCH)
    if store is not None:
        measured, measured_eval = measured_costs(store, code_version)
        costs.update(measured)
        eval_costs.update(measured_eval)
    return costs, eval_costs


def estimate_run_seconds(
    params: dict[str, Any],
    blocks: dict[str, dict[str, Any]],
    costs: dict[tuple[str, bool], float] = DEFAULT_SECONDS_PER_EPOCH,
    shared_epochs: int = 0,
    eval_costs: dict[str, float] = DEFAULT_EVAL_SECONDS_PER_EPOCH,
) -> float:
    """Estimated wall time of one run in seconds: the target stage (CV, and its search if any,
    each epoch also scoring the held-out fold) and the attack stage's models, at per-epoch
    costs scaled by rows x variants; minus the ``shared_epochs`` of every training it reads
    off a sibling (:func:`shared_prefix_epochs`)."""
    fold_rows, attack_rows, p = _rows(blocks)
    factor = kernel_factor(params)
    per_cell = costs[(params["model"], bool(params["dp"]))] * factor / REFERENCE_CELLS
    eval_per_cell = eval_costs[params["model"]] * factor / REFERENCE_EVAL_CELLS
    held_out_rows = fold_rows / (blocks["split"]["folds"] - 1)
    trained = 1.0 - shared_epochs / params["epochs"] if params["epochs"] else 1.0
    cv_epochs = target_model_epochs(params, blocks["split"]["folds"]) * trained
    target = cv_epochs * p * (fold_rows * per_cell + held_out_rows * eval_per_cell)
    attack = attack_model_epochs(params, blocks) * attack_rows * p * trained * per_cell
    return OVERHEAD_SECONDS + target + attack


def run_threads(params: dict[str, Any], cores: int) -> int:
    """Threads a run's kernel computes on under the local cluster (pipeline.cluster): the
    Lasso one (its small ops lose to thread hand-offs), a CNN every core."""
    return LASSO_THREADS if params["model"] == "lasso" else cores


def wall_seconds(runs: list[tuple[float, int]], n_workers: int, cores: int) -> float:
    """Wall time of runs executed in the given order, each taking the next free worker.

    ``runs`` holds (seconds when alone on the machine, threads). The cores are shared equally
    by the threads of the runs in progress, so a run progresses at min(1, cores / threads
    wanted) of its speed alone: two Lasso runs (one thread each) overlap fully on 2 cores, two
    CNN runs (2 threads each) take as long as one after the other (measured: 0.92 s per DP CNN
    epoch with 2 workers side by side against 0.85 s alone, pipeline.cluster).
    """
    pending = [list(run) for run in reversed(runs)]
    active: list[list[float]] = []
    clock = 0.0
    while pending or active:
        while pending and len(active) < n_workers:
            active.append(pending.pop())
        rate = min(1.0, cores / sum(threads for _, threads in active))
        step = min(left for left, _ in active) / rate
        clock += step
        for run in active:
            run[0] -= step * rate
        active = [run for run in active if run[0] > 1e-9]
    return clock

"""Stage 02: from run parameters to the trained fold models and the target record.

:func:`plan_training` turns a run's parameters into a model, a training configuration and the
accountant's epsilon (noise calibrated to a target epsilon when asked); :func:`train_target`
cross-validates it on the target half (after a hyperparameter search when the run asks for
one); :func:`target_record` is what ``target.json`` holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dpmia_utils.accounting import (
    calibrate_noise,
    describe_accounting,
    epsilons_all,
    training_accounting,
)
from dpmia_utils.data import PreparedTrait
from dpmia_utils.jsonio import jsonable, read_json

from .data_prep import StudySplits
from .resources import peak_rss_mb


@dataclass(frozen=True)
class TrainingPlan:
    """The model, the optimiser/DP settings and what the accountant says about them."""

    spec: Any  # models.ModelSpec
    config: Any  # training.TrainConfig
    n_train: int
    delta: float | None
    epsilon: dict[str, float | None]
    accounting: dict[str, Any] | None

    def describe(self) -> dict[str, Any]:
        """JSON-able description for the target record."""
        return {
            "model": self.spec.to_dict(),
            "config": self.config.to_dict(),
            "n_train": self.n_train,
            "delta": self.delta,
            "epsilon": self.epsilon,
            "accounting": self.accounting,
        }


def plan_training(run: dict[str, Any], n_train: int) -> TrainingPlan:
    """Turn run parameters into a ModelSpec and TrainConfig; calibrate noise for a target epsilon.

    delta = 1/n_train (the paper's choice). The accountant assumes Poisson sampling; with
    `sampling: shuffle` (the paper's practice) the reported epsilon is that approximation.
    An engine that is not available is an error, never a quiet switch to another.
    """
    from dpmia_utils.models import ModelSpec
    from dpmia_utils.training import TrainConfig, available_engines

    if run["engine"] not in available_engines():
        raise ValueError(f"unknown engine {run['engine']!r}; available: {available_engines()}")
    spec = ModelSpec(
        kind=run["model"],
        l1=run["l1"],
        n_kernels=run["n_kernels"],
        kernel_size=run["kernel_size"],
        dropout=run["dropout"] if run["model"] == "cnn" else 0.0,
    )
    microbatch_size = round(1 / run["microbatch_fraction"])
    # With microbatches of more than one example, adding or removing one individual changes
    # one microbatch's clipped mean gradient by up to 2C, so the accountant sees noise / 2.
    sensitivity = 2.0 if microbatch_size > 1 else 1.0
    noise, epsilon, accounting, delta = 0.0, {}, None, None
    if run["dp"]:
        delta = 1.0 / n_train
        noise = run["noise_multiplier"]
        if noise is None:
            noise = sensitivity * calibrate_noise(
                run["target_epsilon"],
                n_train,
                run["batch_size"],
                run["epochs"],
                delta=delta,
                accountant="rdp",
            )
        effective_noise = noise / sensitivity
        epsilon = jsonable(
            epsilons_all(n_train, run["batch_size"], run["epochs"], effective_noise, delta=delta)
        )
        accounting = describe_accounting(
            n_train,
            run["batch_size"],
            run["epochs"],
            effective_noise,
            delta=delta,
            accountant="rdp",
        )
        accounting["sampling_used_in_training"] = run["sampling"]
        accounting["noise_multiplier_in_training"] = float(noise)
        accounting["sensitivity_in_clip_units"] = sensitivity
        if run["sampling"] != "poisson":
            accounting["note"] = (
                "training used shuffled fixed batches; the Poisson accountant is the paper's "
                "approximation for them"
            )
    config = TrainConfig(
        learning_rate=run["learning_rate"],
        batch_size=run["batch_size"],
        epochs=run["epochs"],
        dp=run["dp"],
        l2_clip=run["l2_clip"],
        noise_multiplier=float(noise) if run["dp"] else 0.0,
        microbatch_fraction=run["microbatch_fraction"],
        sampling=run["sampling"],
        seed=run["seed"],
        engine=run["engine"],
        loss=run["loss"],
    )
    return TrainingPlan(spec, config, n_train, delta, epsilon, accounting)


def fold_train_size(splits: StudySplits) -> int:
    """The training-set size noise calibration uses: the smallest CV training fold."""
    return int(min(train.size for train, _ in splits.folds))


def train_target(
    dataset: PreparedTrait, splits: StudySplits, params: dict[str, Any], *, progress: bool = False
) -> tuple[Any, TrainingPlan, Any]:
    """Cross-validate the run's model; with ``params["search"]``, select it first by CV.

    Returns (CVResult, TrainingPlan of the trained configuration, Selection or None).
    """
    from dpmia_utils.training import cross_validate, select_configuration

    # int8 +-1 values: a quarter of float32's 425 MB on the real data; folds convert their rows.
    X, y = dataset.features(np.int8), dataset.labels
    n_train = fold_train_size(splits)
    if not params.get("search"):
        plan = plan_training(params, n_train=n_train)
        return (
            cross_validate(X, y, plan.spec, plan.config, splits.folds, progress=progress),
            plan,
            None,
        )
    selection = select_configuration(
        X, y, splits.folds, params, lambda p: plan_training(p, n_train=n_train), progress=progress
    )
    return selection.cv, plan_training(selection.params, n_train=n_train), selection


def converged_l1_row(
    dataset: PreparedTrait, splits: StudySplits, params: dict[str, Any]
) -> dict[str, Any] | None:
    """No-DP Lasso with lambda > 0: the converged L1 solution on the same folds, as a reference.

    Imports no TensorFlow: notebook 02 computes it before training, so that liblinear's copies
    (about 1 GB on the real data) do not add to TensorFlow's and the models' memory.
    """
    from dpmia_utils.lasso_reference import converged_l1_reference

    if params["model"] != "lasso" or params["l1"] <= 0 or params["dp"]:
        return None
    return converged_l1_reference(
        dataset.features(np.int8), dataset.labels, splits.folds, params["l1"]
    )


def trained_params(run_dir: str | Path, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters the target stage actually trained (the selected ones after a search)."""
    if not params.get("search"):
        return params
    record = read_json(Path(run_dir) / "target.json")
    return {**params, **record["selection"]["selected"]}


def released_model_accounting(cv: Any, plan: TrainingPlan) -> dict[str, Any] | None:
    """Epsilons that bound every fold model: each fold on its own n and the steps it took."""
    if not plan.config.dp:
        return None
    sensitivity = plan.accounting["sensitivity_in_clip_units"]
    return training_accounting(
        [(r.n_train, r.steps) for r in cv.train_results],
        plan.config.batch_size,
        plan.config.epochs,
        plan.config.noise_multiplier / sensitivity,
    )


def target_record(
    cv: Any,
    plan: TrainingPlan,
    dataset: PreparedTrait,
    splits: StudySplits,
    selection: Any = None,
    l1_reference: dict[str, Any] | None = None,
) -> dict:
    """The target stage's results record (what target.json holds).

    ``epsilon`` bounds every fold model (each accounted on its own n and real steps, delta =
    1/n); ``epsilon_nominal`` is the planned value (smallest fold, tf-privacy's step count).
    """
    epoch_seconds = [s for result in cv.train_results for s in result.epoch_seconds]
    n_train = fold_train_size(splits)
    released = released_model_accounting(cv, plan)
    return {
        "n_train": n_train,
        "n_variants": dataset.n_variants,
        "folds": len(splits.folds),
        "train_accuracy_mean": float(cv.mean_train_accuracy),
        "train_accuracy_std": float(cv.std_train_accuracy),
        "test_accuracy_mean": float(cv.mean_test_accuracy),
        "test_accuracy_std": float(cv.std_test_accuracy),
        "std_ddof": 1,
        "fold_train_accuracy": [float(a) for a in cv.train_accuracy],
        "fold_test_accuracy": [float(a) for a in cv.test_accuracy],
        # Fraction of penalised kernel weights that are exactly non-zero (1.0 = not sparse).
        "nonzero_fraction_mean": float(np.mean(cv.sparsity)),
        "nonzero_fraction_std": (
            float(np.std(cv.sparsity, ddof=1)) if len(cv.sparsity) > 1 else 0.0
        ),
        "noise_multiplier": plan.config.noise_multiplier if plan.config.dp else None,
        "epsilon": jsonable(released["epsilon"]) if released else plan.epsilon,
        "epsilon_nominal": plan.epsilon,
        "delta": released["delta"] if released else plan.delta,
        "accounting": {**plan.accounting, "released_models": released} if released else None,
        "params_trained": {"model": plan.spec.to_dict(), "config": plan.config.to_dict()},
        "selection": selection.record() if selection is not None else None,
        "converged_l1_reference": l1_reference,
        "steps": [int(r.steps) for r in cv.train_results],
        # Epochs each fold read off a saved prefix (another run's) instead of computing them.
        "resumed_epochs": [int(r.resumed_epochs) for r in cv.train_results],
        "sampling": plan.config.sampling,
        "engine": plan.config.engine,
        "seconds": float(sum(cv.seconds)),
        "seconds_per_epoch": float(np.median(epoch_seconds)) if epoch_seconds else None,
        "train_cells": int(n_train * dataset.n_variants),
        "peak_rss_mb": peak_rss_mb(),
        "splits": splits.describe(),
        "dataset": {
            "trait": dataset.trait,
            "n_samples": dataset.n_samples,
            "n_variants": dataset.n_variants,
            "threshold": float(dataset.threshold),
            "provenance": jsonable(dataset.provenance),
        },
        "cv_summary": jsonable(cv.summary()),
    }

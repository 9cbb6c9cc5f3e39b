"""The study protocol: the steps the stage notebooks call, from parameters to records.

Data flows one way: parameters -> dataset -> splits -> training plan (noise, epsilon) ->
fold models -> target record; fold models + shadow data -> attacks -> attack record. Each
notebook is a thin story over these functions, so a researcher can call the same steps on
their own data without the notebooks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import paths
from .accounting import calibrate_noise, describe_accounting, epsilons_all, training_accounting
from .data import PreparedTrait, load_trait, locate_raw_data, raw_file_checksum
from .memory import peak_rss_mb
from .splits import kfold_splits, target_shadow_split
from .store import atomic_write_json

SYNTHETIC_FORMAT_VERSION = 1


def _synthetic_recipe(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "n_samples": data["synthetic_samples"],
        "n_variants": data["synthetic_variants"],
        "seed": data["seed"],
        "version": SYNTHETIC_FORMAT_VERSION,
    }


def data_fingerprint(data: dict[str, Any]) -> str:
    """Checksum of the data a data block points at: raw archives, or the synthetic recipe."""
    if data["source"] == "synthetic":
        payload = json.dumps(_synthetic_recipe(data), sort_keys=True)
    else:
        archives = locate_raw_data(data.get("data_dir"))
        payload = json.dumps(
            [raw_file_checksum(archives.genotype), raw_file_checksum(archives.phenotype)]
        )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def synthetic_data_dir(data: dict[str, Any]) -> Path:
    """Write (once, atomically) the synthetic cross a data block describes; return its folder."""
    from .synthetic import simulate_cross, write_cross

    recipe = _synthetic_recipe(data)
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    folder = paths.cache_dir() / f"synthetic-{key}"
    if folder.is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".synthetic-{key}-", dir=folder.parent))
    cross = simulate_cross(
        n_samples=recipe["n_samples"],
        n_variants=recipe["n_variants"],
        seed=recipe["seed"],
        traits=("1_CopperSulfate_1", "1_Zeocin_1"),
    )
    write_cross(cross, partial)
    try:
        os.rename(partial, folder)
    except OSError:  # another process won the race: its copy is identical
        shutil.rmtree(partial, ignore_errors=True)
    return folder


def load_dataset(data: dict[str, Any], progress: bool = True) -> PreparedTrait:
    """The prepared trait a data block describes, optionally cut to a slice for fast profiles."""
    data_dir = synthetic_data_dir(data) if data["source"] == "synthetic" else data.get("data_dir")
    dataset = load_trait(
        data["trait"],
        data_dir,
        binarize=data["binarize"],
        threshold=data["threshold"],
        balance=data["balance"],
        seed=data["seed"],
        progress=progress,
    )
    return slice_dataset(dataset, data.get("max_samples"), data.get("max_variants"), data["seed"])


def slice_dataset(
    dataset: PreparedTrait, max_samples: int | None, max_variants: int | None, seed: int = 0
) -> PreparedTrait:
    """A seeded random subset of individuals and the first variants (a contiguous genome slice)."""
    rows = np.arange(dataset.n_samples)
    if max_samples is not None and max_samples < dataset.n_samples:
        rng = np.random.default_rng([seed, 99])
        rows = np.sort(rng.choice(dataset.n_samples, size=max_samples, replace=False))
    cols = slice(0, max_variants)
    if rows.size == dataset.n_samples and max_variants is None:
        return dataset
    return dataclasses.replace(
        dataset,
        sample_ids=dataset.sample_ids[rows],
        variant_ids=dataset.variant_ids[cols],
        genotypes=np.ascontiguousarray(dataset.genotypes[rows][:, cols]),
        phenotype=dataset.phenotype[rows],
        labels=dataset.labels[rows],
        provenance={
            **dataset.provenance,
            "slice": {"max_samples": max_samples, "max_variants": max_variants, "seed": seed},
        },
    )


@dataclass(frozen=True)
class StudySplits:
    """Who is where: the private target half (with its CV folds) and the adversary's shadow half."""

    target: np.ndarray
    shadow: np.ndarray
    folds: list[tuple[np.ndarray, np.ndarray]]

    def describe(self) -> dict[str, Any]:
        """Sizes, for records and notebooks."""
        return {
            "n_target": int(self.target.size),
            "n_shadow": int(self.shadow.size),
            "folds": len(self.folds),
            "fold_train_sizes": [int(train.size) for train, _ in self.folds],
            "fold_test_sizes": [int(test.size) for _, test in self.folds],
        }


def make_splits(dataset: PreparedTrait, split: dict[str, Any]) -> StudySplits:
    """Stratified target/shadow halves and stratified k-fold CV on the target half."""
    halves = target_shadow_split(
        dataset.n_samples,
        seed=split["seed"],
        target_fraction=split["target_fraction"],
        labels=dataset.labels,
    )
    folds = kfold_splits(halves.target, k=split["folds"], seed=split["seed"], labels=dataset.labels)
    return StudySplits(target=halves.target, shadow=halves.shadow, folds=folds)


@dataclass(frozen=True)
class TrainingPlan:
    """The model, the optimiser/DP settings and what the accountant says about them."""

    spec: Any  # models.ModelSpec
    config: Any  # training.TrainConfig
    n_train: int
    delta: float | None
    epsilon: dict[str, float | None]
    accounting: dict[str, Any] | None
    engine_requested: str

    def describe(self) -> dict[str, Any]:
        """JSON-able description for the target record."""
        return {
            "model": self.spec.to_dict(),
            "config": self.config.to_dict(),
            "n_train": self.n_train,
            "delta": self.delta,
            "epsilon": self.epsilon,
            "accounting": self.accounting,
            "engine_requested": self.engine_requested,
        }


def _json_number(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def plan_training(run: dict[str, Any], n_train: int) -> TrainingPlan:
    """Turn run parameters into a ModelSpec and TrainConfig; calibrate noise for a target epsilon.

    delta = 1/n_train (the paper's choice). The accountant assumes Poisson sampling; with
    `sampling: shuffle` (the paper's practice) the reported epsilon is that approximation.
    """
    from .models import ModelSpec
    from .training import TrainConfig, available_engines

    spec = ModelSpec(
        kind=run["model"],
        l1=run["l1"],
        n_kernels=run["n_kernels"],
        kernel_size=run["kernel_size"],
        dropout=run["dropout"] if run["model"] == "cnn" else 0.0,
    )
    engine = run["engine"] if run["engine"] in available_engines() else "reference"
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
        epsilon = {
            name: _json_number(value)
            for name, value in epsilons_all(
                n_train, run["batch_size"], run["epochs"], effective_noise, delta=delta
            ).items()
        }
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
        engine=engine,
        loss=run["loss"],
    )
    return TrainingPlan(
        spec=spec,
        config=config,
        n_train=n_train,
        delta=delta,
        epsilon=epsilon,
        accounting=accounting,
        engine_requested=run["engine"],
    )


def fold_train_size(splits: StudySplits) -> int:
    """The training-set size noise calibration uses: the smallest CV training fold."""
    return int(min(train.size for train, _ in splits.folds))


def train_target(
    dataset: PreparedTrait, splits: StudySplits, params: dict[str, Any], *, progress: bool = False
) -> tuple[Any, TrainingPlan, Any]:
    """Cross-validate the run's model; with ``params["search"]``, select it first by CV.

    Returns (CVResult, TrainingPlan of the trained configuration, Selection or None).
    """
    from .selection import select_configuration
    from .training import cross_validate

    X, y = dataset.features(), dataset.labels
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
    """No-DP Lasso with lambda > 0: the converged L1 solution on the same folds, as a reference."""
    from .lasso_reference import converged_l1_reference

    if params["model"] != "lasso" or params["l1"] <= 0 or params["dp"]:
        return None
    return converged_l1_reference(dataset.features(), dataset.labels, splits.folds, params["l1"])


def trained_params(run_dir: str | Path, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters the target stage actually trained (the selected ones after a search)."""
    if not params.get("search"):
        return params
    record = json.loads((Path(run_dir) / "target.json").read_text())
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
    summary = cv.summary()
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
        "epsilon": {k: _json_number(v) for k, v in released["epsilon"].items()}
        if released
        else plan.epsilon,
        "epsilon_nominal": plan.epsilon,
        "delta": released["delta"] if released else plan.delta,
        "accounting": {**plan.accounting, "released_models": released} if released else None,
        "params_trained": {"model": plan.spec.to_dict(), "config": plan.config.to_dict()},
        "selection": selection.record() if selection is not None else None,
        "converged_l1_reference": l1_reference,
        "steps": [int(r.steps) for r in cv.train_results],
        "sampling": plan.config.sampling,
        "engine": plan.config.engine,
        "engine_requested": plan.engine_requested,
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
            "provenance": _jsonable(dataset.provenance),
        },
        "cv_summary": _jsonable(summary),
    }


def _jsonable(value: Any) -> Any:
    """Numpy scalars/arrays and non-finite floats turned into strict-JSON values."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


def save_fold_models(cv: Any, run_dir: str | Path) -> list[Path]:
    """Save each fold model's weights (npz) into the run folder, for the attack stage."""
    folder = Path(run_dir) / "models"
    folder.mkdir(parents=True, exist_ok=True)
    saved = []
    for index, model in enumerate(cv.models):
        path = folder / f"fold{index}.npz"
        weights = {f"w{i}": w for i, w in enumerate(model.get_weights())}
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **weights)
        os.replace(tmp, path)
        saved.append(path)
    return saved


def load_fold_models(run_dir: str | Path, plan: TrainingPlan, n_features: int) -> list[Any]:
    """Rebuild the fold models saved by `save_fold_models`."""
    from .models import build_model

    models = []
    for path in sorted((Path(run_dir) / "models").glob("fold*.npz"), key=lambda p: int(p.stem[4:])):
        model = build_model(plan.spec, n_features, seed=0)
        with np.load(path) as weights:
            model.set_weights([weights[f"w{i}"] for i in range(len(weights.files))])
        models.append(model)
    if not models:
        raise FileNotFoundError(f"no fold models in {Path(run_dir) / 'models'}: run stage 02 first")
    return models


def write_output(run_dir: str | Path, name: str, payload: dict[str, Any]) -> Path:
    """Write a stage's JSON output into the run folder atomically (strict JSON)."""
    path = Path(run_dir) / name
    atomic_write_json(path, _jsonable(payload))
    return path


def default_run_dir(profile: str = "manual") -> Path:
    """Where a notebook run by hand (no run_dir parameter) writes: results/<profile>/scratch."""
    folder = paths.results_dir() / profile / "scratch"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def raw_archives(data: dict[str, Any]) -> Any:
    """The raw genotype/phenotype files a data block reads (data.RawArchives)."""
    if data["source"] == "synthetic":
        return locate_raw_data(synthetic_data_dir(data), download=False)
    return locate_raw_data(data.get("data_dir"))


@dataclass
class AttackOutcome:
    """Every attack's result per repeat, their summaries and means, and what was trained."""

    results: dict[str, list[Any]]
    summaries: dict[str, list[dict[str, Any]]]
    aggregate: dict[str, dict[str, Any]]
    info: dict[str, Any]

    def record(self) -> dict[str, Any]:
        """The attack stage's results record (what attack.json holds)."""
        return {
            "attacks": {
                name: {"metrics": self.aggregate[name], "repeats": self.summaries[name]}
                for name in self.results
            },
            "info": {**self.info, "peak_rss_mb": peak_rss_mb()},
        }


def _attack_names(attack: dict[str, Any]) -> list[str]:
    names = list(attack["attacks"])
    if attack["black_box"]:
        names += [f"{n}_black_box" for n in attack["attacks"] if n in ("shadow", "lira")]
    return names


def attack_targets(
    dataset: PreparedTrait,
    splits: StudySplits,
    plan: TrainingPlan,
    fold_models: list[Any],
    attack: dict[str, Any],
    *,
    shadow_in_fraction: float = 0.5,
    seed: int = 0,
    progress: bool = True,
) -> AttackOutcome:
    """Attack the CV fold models (repeat r targets fold r mod k) with the chosen attacks.

    Members of repeat r: fold r's training records; non-members: fold r's held-out records
    (never seen by that model, never used by the adversary); a balanced sample of each,
    disjoint by sample ID. The adversary's data is the shadow half. White box: shadow and
    LiRA reference models use the target's recipe (DP included). LiRA (offline) trains its K
    reference models once on random halves of the shadow half and reuses them for every
    target; the paper's shadow attack trains a new shadow model in every repeat.
    """
    from tqdm import tqdm

    from .attacks import (
        AttackResult,
        aggregate_repeats,
        as_logits_fn,
        assert_disjoint_ids,
        black_box_train_fn,
        keras_train_fn,
        lira_decision_rule,
        lira_offline_scores,
        lira_predictions,
        lira_statistic,
        loss_attack,
        mean_loss,
        membership_evaluation_set,
        probability_only,
        reference_model_plan,
        shadow_model_attack,
        summary_metrics,
    )

    X, y = dataset.features(), dataset.labels.astype(np.int64)
    names = _attack_names(attack)
    recipes = {"white": keras_train_fn(plan.spec, plan.config)}
    if attack["black_box"]:
        recipes["black"] = black_box_train_fn(plan.config.epochs)
    rng = np.random.default_rng([seed, 7])
    repeat_seeds = rng.integers(0, 2**31 - 1, size=attack["repeats"]).tolist()
    n_reference = attack["reference_models"]
    lira_wanted = any(n.startswith("lira") for n in names)
    n_trainings = attack["repeats"] * sum(n.startswith("shadow") for n in names)
    n_trainings += n_reference * len(recipes) * lira_wanted
    bar = tqdm(total=n_trainings, desc="attack model trainings", disable=not progress)

    # LiRA reference models: trained once, OUT for every candidate (all in the target half).
    reference_phi: dict[str, np.ndarray] = {}
    if lira_wanted:
        masks = reference_model_plan(splits.shadow.size, n_reference, seed=seed)
        for kind, train_fn in recipes.items():
            phis = []
            for k, mask in enumerate(masks):
                rows = splits.shadow[mask]
                model = train_fn(X[rows], y[rows], int(rng.integers(2**31 - 1)) + k)
                logits = as_logits_fn(model)
                if kind == "black":
                    logits = probability_only(logits)
                phis.append(lira_statistic(logits(X[splits.target]), y[splits.target]))
                bar.update()
            reference_phi[kind] = np.stack(phis)  # (K, n_target), columns follow splits.target
    target_column = {int(i): c for c, i in enumerate(splits.target)}

    results: dict[str, list[Any]] = {name: [] for name in names}
    summaries: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    metrics_kwargs = {"n_bootstrap": attack["n_bootstrap"]}
    for repeat, repeat_seed in enumerate(repeat_seeds):
        fold = repeat % len(fold_models)
        members, non_members = splits.folds[fold]
        eval_idx, is_member = membership_evaluation_set(members, non_members, seed=repeat_seed)
        assert_disjoint_ids(dataset.sample_ids, eval_idx[is_member], eval_idx[~is_member])
        white = as_logits_fn(fold_models[fold])
        targets = {"white": white, "black": probability_only(white)}
        for name in names:
            kind = "black" if name.endswith("_black_box") else "white"
            base = name.removesuffix("_black_box")
            if base == "shadow":
                result = shadow_model_attack(
                    targets[kind],
                    X[eval_idx],
                    y[eval_idx],
                    is_member,
                    X[splits.shadow],
                    y[splits.shadow],
                    train_fn=recipes[kind],
                    in_fraction=shadow_in_fraction,
                    seed=repeat_seed,
                    eval_indices=eval_idx,
                )
                bar.update()
            elif base == "loss":
                result = loss_attack(
                    white,
                    X[eval_idx],
                    y[eval_idx],
                    is_member,
                    train_loss=mean_loss(white, X[members], y[members]),
                    eval_indices=eval_idx,
                )
            else:
                phi = lira_statistic(targets[kind](X[eval_idx]), y[eval_idx])
                columns = [target_column[int(i)] for i in eval_idx]
                scores, _ = lira_offline_scores(phi, reference_phi[kind][:, columns])
                result = AttackResult(
                    name=name,
                    scores=scores,
                    is_member=is_member,
                    sample_indices=eval_idx,
                    predictions=lira_predictions(scores),
                    info={
                        "n_reference": n_reference,
                        "online": False,
                        "fixed_variance": True,
                        "decision_rule": lira_decision_rule(),
                    },
                )
            result.info.update(repeat=repeat, target_fold=fold, black_box=kind == "black")
            results[name].append(result)
            summaries[name].append(result.summary(**metrics_kwargs))
    bar.close()
    aggregate = {
        name: aggregate_repeats([summary_metrics(s) for s in summaries[name]]) for name in names
    }
    info = {
        "attacks": names,
        "repeats": attack["repeats"],
        "targets": "CV fold models (repeat r attacks fold r mod k)",
        "n_reference": n_reference if lira_wanted else 0,
        "n_model_trainings": n_trainings,
        "evaluation_size": [int(r.is_member.size) for r in results[names[0]]],
        "adversary_pool_size": int(splits.shadow.size),
    }
    return AttackOutcome(results=results, summaries=summaries, aggregate=aggregate, info=info)

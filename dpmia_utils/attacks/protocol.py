"""The attack protocol: which models are attacked, on whom, with what, and how often.

The one orchestrator the attack stage calls and the tests test (:func:`attack_targets`). The
targets are the cross-validation fold models: repeat r attacks fold r mod k, with fold r's
training records as members and its held-out records as non-members, a balanced sample of
each, disjoint by sample ID. The adversary holds the shadow half. White box: shadow and LiRA
reference models use the target's recipe (DP included); black box adds the shadow and LiRA
attacks again with a default recipe and probability-only access to the target. The shadow
attack trains a new shadow model in every repeat; LiRA trains its K reference models once and
reuses them for every target, or (``reference_models: shadow``) uses the repeats' shadow
models as its references, which then cost no training of their own. Per attack, each repeat's metrics are summarised and then
aggregated over the repeats (:func:`summary_metrics`, :func:`aggregate_repeats`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from dpmia_utils import seeds
from dpmia_utils.constants import ATTACK_NAMES, SHADOW_REFERENCES
from dpmia_utils.splits import balanced_membership_sample

from .lira import lira_attack, reference_model_plan, reference_statistics
from .loss import loss_attack
from .scores import (
    AttackResult,
    TrainFn,
    as_logits_fn,
    black_box_train_fn,
    keras_train_fn,
    lira_statistic,
    mean_loss,
    probability_only,
)
from .shadow import shadow_model_attack, train_shadow_model

#: Seed-stream tag of the repeats' seeds and the reference models' training seeds.
_TAG_REPEATS = 7

#: The attacks that train adversary models, and so also run black box when asked.
_TRAINED_ATTACKS = ("shadow", "lira")


# --------------------------------------------------------------------------- evaluation sets


def membership_evaluation_set(
    members: np.ndarray, non_members: np.ndarray, seed: int = 0, size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Balanced evaluation set: ``size`` members and as many never-seen non-members, disjoint.

    Returns (indices, is_member), members first. Drawn without replacement by
    :func:`dpmia_utils.splits.balanced_membership_sample`; ``size=None`` takes the smaller side
    whole.
    """
    chosen_members, chosen_non_members = balanced_membership_sample(
        members, non_members, seed=seed, size=size
    )
    if np.intersect1d(chosen_members, chosen_non_members).size:
        raise AssertionError("evaluation members and non-members share an index")
    indices = np.concatenate([chosen_members, chosen_non_members])
    is_member = np.r_[np.ones(chosen_members.size, bool), np.zeros(chosen_non_members.size, bool)]
    return indices, is_member


def assert_disjoint_ids(sample_ids: Any, members: Any, non_members: Any) -> None:
    """Raise ValueError if any sample ID is both a member and a non-member (by ID, not index)."""
    ids = np.asarray(sample_ids)
    member_ids = set(ids[np.asarray(members, dtype=np.int64)].tolist())
    for index in np.asarray(non_members, dtype=np.int64):
        if ids[index] in member_ids:
            raise ValueError(
                f"sample ID {ids[index]!r} (index {int(index)}) is both a member and a non-member"
            )


# --------------------------------------------------------------------------- aggregation


def summary_metrics(summary: dict[str, Any]) -> dict[str, float | None]:
    """The numbers aggregated over repeats, from one summary record (metrics.summarize_attack).

    ``accuracy``, ``balanced_accuracy``, ``advantage`` and ``empirical_epsilon`` are those of
    the fixed-rule predictions (None without them); ``best_threshold_*`` are the optimistic
    maxima over thresholds chosen on the evaluation labels, kept apart under their own names.
    """
    values: dict[str, float | None] = {
        "accuracy": summary["accuracy"]["value"],
        "balanced_accuracy": summary["balanced_accuracy"]["value"],
        "auc": summary["auc"]["value"],
        "advantage": summary["advantage"]["value"],
        "empirical_epsilon": summary["empirical_epsilon"]["epsilon_lower_bound"],
        "best_threshold_accuracy": summary["best_threshold_accuracy"]["value"],
        "best_threshold_advantage": summary["best_threshold_advantage"]["value"],
    }
    for key, record in summary["tpr_at_fpr"].items():
        values[f"tpr_at_fpr_{key}"] = record["value"]
    return values


def aggregate_repeats(per_repeat: list[dict[str, float | None]]) -> dict[str, dict[str, Any]]:
    """Per metric: mean, std (ddof=1) and count over the repeats where it is not None."""
    out: dict[str, dict[str, Any]] = {}
    for key in per_repeat[0]:
        raw = [r[key] for r in per_repeat]
        finite = np.array([v for v in raw if v is not None], dtype=float)
        out[key] = {
            "mean": float(finite.mean()) if finite.size else None,
            "std": float(finite.std(ddof=1)) if finite.size > 1 else None,
            "n": int(finite.size),
            "values": raw,
        }
    return out


@dataclass
class AttackOutcome:
    """Every attack's result per repeat, their summaries and means, and what was trained."""

    results: dict[str, list[AttackResult]]
    summaries: dict[str, list[dict[str, Any]]]
    aggregate: dict[str, dict[str, Any]]
    info: dict[str, Any]

    def record(self) -> dict[str, Any]:
        """Per attack its aggregate metrics and per-repeat summaries, and the protocol's info."""
        return {
            "attacks": {
                name: {"metrics": self.aggregate[name], "repeats": self.summaries[name]}
                for name in self.results
            },
            "info": dict(self.info),
        }


# --------------------------------------------------------------------------- the protocol


def attack_names(attack: dict[str, Any]) -> list[str]:
    """The attacks an attack block asks for, then ``<name>_black_box`` for the trained ones."""
    unknown = [name for name in attack["attacks"] if name not in ATTACK_NAMES]
    if unknown:
        raise ValueError(f"unknown attacks {unknown}; choose from {list(ATTACK_NAMES)}")
    names = list(attack["attacks"])
    if attack["black_box"]:
        names += [f"{n}_black_box" for n in attack["attacks"] if n in _TRAINED_ATTACKS]
    return names


def reference_models_are_shadow_models(attack: dict[str, Any]) -> bool:
    """Whether LiRA reuses the shadow attack's models (``reference_models: shadow``)."""
    return attack["reference_models"] == SHADOW_REFERENCES


def attack_targets(
    dataset: Any,
    splits: Any,
    plan: Any,
    fold_models: Sequence[Any],
    attack: dict[str, Any],
    *,
    shadow_in_fraction: float = 0.5,
    seed: int = 0,
    progress: bool = True,
    train_fn: TrainFn | None = None,
    black_box_recipe: TrainFn | None = None,
) -> AttackOutcome:
    """Attack the CV fold models (repeat r targets fold r mod k) with the chosen attacks.

    ``dataset`` (a data.PreparedTrait), ``splits`` (a stages.StudySplits) and ``fold_models``
    (fold k's model trained on ``splits.folds[k][0]``) are what the target stage produced;
    ``attack`` is the run's attack block (attacks, repeats, reference_models, black_box,
    n_bootstrap). The white-box recipe is ``keras_train_fn(plan.spec, plan.config)`` (plan: a
    stages.TrainingPlan), the black-box one ``black_box_train_fn(plan.config.epochs)``;
    ``train_fn`` and ``black_box_recipe`` replace them (``plan`` may then be None).
    ``info["n_model_trainings"]`` counts every adversary model trained.
    """
    # int8 +-1 values (a quarter of float32's memory); every model converts the rows it reads.
    X, y = dataset.features(np.int8), dataset.labels.astype(np.int64)
    if np.intersect1d(splits.target, splits.shadow).size:
        raise ValueError("the shadow half holds target individuals; it must be disjoint")
    names = attack_names(attack)
    if train_fn is None:
        train_fn = keras_train_fn(plan.spec, plan.config)
    recipes = {"white": train_fn}
    if attack["black_box"]:
        if black_box_recipe is None:
            black_box_recipe = black_box_train_fn(plan.config.epochs)
        recipes["black"] = black_box_recipe
    rng = seeds.generator(seed, _TAG_REPEATS)
    repeat_seeds = rng.integers(0, 2**31 - 1, size=attack["repeats"]).tolist()
    lira_wanted = any(n.startswith("lira") for n in names)
    from_shadow = reference_models_are_shadow_models(attack)
    n_reference = attack["repeats"] if from_shadow else attack["reference_models"]
    n_trainings = attack["repeats"] * sum(n.startswith("shadow") for n in names)
    n_trainings += 0 if from_shadow else n_reference * len(recipes) * lira_wanted
    bar = tqdm(total=n_trainings, desc="attack model trainings", disable=not progress)
    # The adversary's data, copied out of X once (not once per repeat).
    X_shadow, y_shadow = X[splits.shadow], y[splits.shadow]

    def access(kind: str) -> Any:
        return probability_only if kind == "black" else as_logits_fn

    # LiRA reference models: trained once, OUT for every candidate (all in the target half);
    # or, with reference_models "shadow", the shadow attack's models (one per repeat, each on
    # a random half of the same pool with the same recipe), trained here up front.
    reference_phi: dict[str, np.ndarray] = {}
    shadow_models: dict[tuple[str, int], Any] = {}
    if from_shadow and lira_wanted:
        for kind, recipe in recipes.items():
            phis = []
            for repeat, repeat_seed in enumerate(repeat_seeds):
                trained = train_shadow_model(
                    X_shadow,
                    y_shadow,
                    train_fn=recipe,
                    in_fraction=shadow_in_fraction,
                    seed=repeat_seed,
                )
                shadow_models[kind, repeat] = trained
                logits = access(kind)(trained[0])
                phis.append(lira_statistic(logits(X[splits.target]), y[splits.target]))
                bar.update()
            reference_phi[kind] = np.stack(phis)
    elif lira_wanted:
        masks = reference_model_plan(splits.shadow.size, n_reference, seed=seed)
        for kind, recipe in recipes.items():
            model_seeds = [int(rng.integers(2**31 - 1)) + k for k in range(n_reference)]
            reference_phi[kind] = reference_statistics(
                recipe,
                X,
                y,
                splits.shadow,
                masks,
                model_seeds,
                splits.target,
                access=access(kind),
                on_trained=bar.update,
            )  # (K, n_target), columns follow splits.target
    target_column = {int(i): c for c, i in enumerate(splits.target)}

    results: dict[str, list[AttackResult]] = {name: [] for name in names}
    summaries: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for repeat, repeat_seed in enumerate(repeat_seeds):
        fold = repeat % len(fold_models)
        members, non_members = splits.folds[fold]
        eval_idx, is_member = membership_evaluation_set(members, non_members, seed=repeat_seed)
        assert_disjoint_ids(dataset.sample_ids, eval_idx[is_member], eval_idx[~is_member])
        white = as_logits_fn(fold_models[fold])
        targets = {"white": white, "black": probability_only(white)}
        X_eval, y_eval = X[eval_idx], y[eval_idx]
        for name in names:
            kind = "black" if name.endswith("_black_box") else "white"
            base = name.removesuffix("_black_box")
            if base == "shadow":
                trained = shadow_models.pop((kind, repeat), None)
                result = shadow_model_attack(
                    targets[kind],
                    X_eval,
                    y_eval,
                    is_member,
                    X_shadow,
                    y_shadow,
                    train_fn=recipes[kind],
                    in_fraction=shadow_in_fraction,
                    seed=repeat_seed,
                    eval_indices=eval_idx,
                    trained=trained,
                )
                if trained is None:
                    bar.update()
            elif base == "loss":
                train_loss = mean_loss(white, X[members], y[members])
                result = loss_attack(
                    white, X_eval, y_eval, is_member, train_loss=train_loss, eval_indices=eval_idx
                )
            else:
                columns = [target_column[int(i)] for i in eval_idx]
                phi_reference = reference_phi[kind][:, columns]
                result = lira_attack(
                    targets[kind],
                    X_eval,
                    y_eval,
                    is_member,
                    phi_reference,
                    name=name,
                    eval_indices=eval_idx,
                )
            result.info.update(repeat=repeat, target_fold=fold, black_box=kind == "black")
            results[name].append(result)
            summaries[name].append(result.summary(n_bootstrap=attack["n_bootstrap"]))
    bar.close()
    aggregate = {
        name: aggregate_repeats([summary_metrics(s) for s in summaries[name]]) for name in names
    }
    info = {
        "attacks": names,
        "repeats": attack["repeats"],
        "targets": "CV fold models (repeat r attacks fold r mod k)",
        "n_reference": n_reference if lira_wanted else 0,
        "lira_references": (
            ("the shadow models" if from_shadow else "own reference models")
            if lira_wanted
            else None
        ),
        "n_model_trainings": n_trainings,
        "evaluation_size": [int(r.is_member.size) for r in results[names[0]]],
        "adversary_pool_size": int(splits.shadow.size),
    }
    return AttackOutcome(results=results, summaries=summaries, aggregate=aggregate, info=info)

"""Membership inference attacks: the paper's shadow-model attack, the loss attack and LiRA.

Every attack scores a balanced evaluation set of members (the target's training records) and
non-members (records the target never saw, no individual on both sides) with a membership
score, higher meaning "more likely a member", and returns an :class:`AttackResult`. Hard
predictions (the paper's accuracy) come from a rule fixed without the evaluation labels, never
from a threshold chosen on them (:func:`dpmia_utils.metrics.summarize_attack`).

Model access. Attacks query models through a *logits function* ``X -> logits`` of shape (n,),
one logit per example as :mod:`dpmia_utils.models` builds them. :func:`as_logits_fn` turns a
Keras model, a :class:`~dpmia_utils.training.TrainResult`, a scikit-learn classifier with
``decision_function`` or a plain callable into one. Shadow and reference models come from a
caller-supplied ``train_fn(X_train, y_train, seed) -> model`` (anything :func:`as_logits_fn`
accepts), so the attacks work with any trainer: :func:`keras_train_fn` wraps
:func:`dpmia_utils.training.train_model`, and tests pass a cheap scikit-learn one.

Attacks (Chen, Wang, Shi 2021, section 4.4; Yeom et al. 2018; Carlini et al. 2022):

* ``shadow``: one shadow model trained like the target (white box: same architecture and
  hyperparameters, DP included) on half of the adversary's shadow data, the other half 'out'
  (the ``mia`` library's ``ShadowModelBundle`` the authors used); a random forest (10 trees,
  depth 2) learns in/out from the shadow model's [1 - p, p, y] on its 'in' and 'out' records
  and is applied to the target's outputs. Hard predictions: the forest's own.
* ``loss``: score = -(binary cross-entropy of the true label); no shadow model. Hard
  predictions (Yeom et al.): member iff loss < the target's mean training loss.
* ``lira``: the likelihood-ratio attack with K reference models, offline (references never
  saw a candidate) or online (each candidate is in half of them). Hard predictions
  (:func:`lira_predictions`): offline, the one-sided test against the OUT Gaussian rejects at
  a level fixed in advance (default 1/2); online, likelihood ratio > 1.

Black box (:func:`run_attacks` with ``black_box=True``): the adversary does not know the
target's hyperparameters, so shadow/reference models come from a default recipe
(``train_fn_black_box``), and the target is queried through its output probability only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import expit
from sklearn.ensemble import RandomForestClassifier

from dpmia_utils import metrics, splits

LogitsFn = Callable[[np.ndarray], np.ndarray]
TrainFn = Callable[[np.ndarray, np.ndarray, int], Any]

#: Attack-model hyperparameters of the paper (section 4.4). ``n_estimators`` is explicit because
#: scikit-learn's default changed from 10 to 100 in version 0.22.
ATTACK_FOREST_PARAMS: dict[str, int] = {"n_estimators": 10, "max_depth": 2}

#: Attack names :func:`run_attacks` understands (``"lira"`` follows its ``online`` argument).
ATTACK_NAMES: tuple[str, ...] = ("shadow", "loss", "lira", "lira_offline", "lira_online")

#: Number of model trainings one repeat of each attack costs (LiRA: ``n_reference``).
_FIXED_TRAININGS: dict[str, int] = {"shadow": 1, "loss": 0}

#: Standard deviations are floored here so a constant statistic (e.g. a model that ignores its
#: data) gives finite scores instead of 0/0.
_MIN_STD = 1e-12

# Seed-stream tags so each use of the user's seed gets an independent stream.
_TAG_SHADOW_MODEL, _TAG_REFERENCE_PLAN, _TAG_REFERENCE_MODEL, _TAG_REPEAT = 11, 12, 13, 14


def _derive_seed(seed: int, *tags: int) -> int:
    """A 31-bit seed from ``seed`` and integer tags (independent streams per tag tuple)."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *tags]).generate_state(1)[0]
    return int(state & 0x7FFFFFFF)


# --------------------------------------------------------------------------- model access


def as_logits_fn(model: Any) -> LogitsFn:
    """A function ``X -> logits (n,)`` for a Keras model, TrainResult, sklearn model or callable."""
    if all(hasattr(model, a) for a in ("model", "spec", "config")):  # training.TrainResult
        model = model.model
    if hasattr(model, "decision_function"):  # scikit-learn linear/binary classifiers
        return _checked(lambda X: model.decision_function(X))
    if hasattr(model, "layers") and hasattr(model, "predict_on_batch"):  # tf.keras.Model
        from dpmia_utils.models import predict_logits  # imports TensorFlow only when needed

        return _checked(lambda X: predict_logits(model, X))
    if callable(model):
        return _checked(model)
    raise TypeError(f"cannot get logits from a {type(model).__name__}")


def _checked(fn: Callable[[np.ndarray], Any]) -> LogitsFn:
    def logits(X: np.ndarray) -> np.ndarray:
        values = np.asarray(fn(X), dtype=np.float64)
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        if values.shape != (len(X),):
            raise ValueError(
                f"expected one logit per example, shape ({len(X)},), got {values.shape}"
            )
        if not np.all(np.isfinite(values)):
            raise ValueError("the model returned non-finite logits")
        return values

    return logits


def probability_only(logits_fn: Any) -> LogitsFn:
    """Restrict access to the output probability: logits are recovered from float64 P(y=1).

    A black-box API returns probabilities, not logits; once a probability rounds to 0 or 1 the
    logit is lost. Probabilities are kept inside [tiny, 1 - eps] so the recovered logit is
    finite (|logit| <= about 36.7, where float64 saturates).
    """
    inner = as_logits_fn(logits_fn)

    def logits(X: np.ndarray) -> np.ndarray:
        p = np.clip(expit(inner(X)), np.finfo(float).tiny, 1.0 - np.finfo(float).eps)
        return np.log(p) - np.log1p(-p)

    return logits


def keras_train_fn(spec: Any, config: Any) -> TrainFn:
    """``train_fn`` that trains a ``models.ModelSpec`` with a ``training.TrainConfig`` (seed replaced)."""
    from dataclasses import replace

    from dpmia_utils.training import train_model

    def train(X_train: np.ndarray, y_train: np.ndarray, seed: int) -> Any:
        return train_model(X_train, y_train, spec, replace(config, seed=int(seed))).model

    return train


def black_box_train_fn(
    epochs: int, *, learning_rate: float = 0.01, batch_size: int = 16
) -> TrainFn:
    """Default recipe of a black-box adversary: non-DP Lasso, l1 = 0, plain SGD (lr, batch)."""
    from dpmia_utils.models import ModelSpec
    from dpmia_utils.training import TrainConfig

    config = TrainConfig(
        learning_rate=learning_rate, batch_size=batch_size, epochs=epochs, dp=False
    )
    return keras_train_fn(ModelSpec(kind="lasso", l1=0.0), config)


def mean_loss(logits_fn: Any, X: np.ndarray, y: np.ndarray) -> float:
    """Mean binary cross-entropy of a model on (X, y), computed stably from its logits."""
    return float(np.mean(-true_label_log_likelihood(as_logits_fn(logits_fn)(X), y)))


# --------------------------------------------------------------------------- statistics


def _labels01(labels: Any, n: int) -> np.ndarray:
    values = np.asarray(labels).ravel()
    if values.shape != (n,):
        raise ValueError(f"expected {n} labels, got shape {np.asarray(labels).shape}")
    if not np.all(np.isin(values, (0, 1))):
        raise ValueError("labels must be binary 0/1")
    return values.astype(np.int64)


def lira_statistic(logits: Any, labels: Any) -> np.ndarray:
    """Logit-scaled confidence of the true label, log(p_y / (1 - p_y)): z if y = 1, else -z.

    For a one-logit sigmoid model p_1 = sigmoid(z) and log(p_1 / p_0) = z exactly, so the
    statistic needs no probabilities and no clipping (Carlini et al. 2022, section 4.2).
    """
    z = np.asarray(logits, dtype=np.float64).ravel()
    y = _labels01(labels, z.size)
    return np.where(y == 1, z, -z)


def true_label_log_likelihood(logits: Any, labels: Any) -> np.ndarray:
    """log p_y = -BCE(y, z) = -log(1 + exp(-phi)), phi the true-label logit; stable for any z."""
    return -np.logaddexp(0.0, -lira_statistic(logits, labels))


def attack_features(probabilities: Any, labels: Any) -> np.ndarray:
    """The paper's attack input: the probability vector, then the true label as ONE 0/1 column.

    ``probabilities`` is P(y=1) of shape (n,) (expanded to the vector [1 - p, p]) or an (n, C)
    probability matrix. The label is a scalar column, as in the ``mia`` library the paper used
    (``np.c_[y_hat, y]``): for two classes a one-hot pair is two complementary copies of the same
    bit, which adds nothing for a tree but dilutes its random feature subsets.
    """
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.ndim == 1:
        probs = np.column_stack([1.0 - probs, probs])
    if probs.ndim != 2:
        raise ValueError(f"probabilities must be (n,) or (n, C), got shape {probs.shape}")
    y = np.asarray(labels).ravel()
    if y.shape != (probs.shape[0],):
        raise ValueError(f"expected {probs.shape[0]} labels, got {y.shape[0]}")
    return np.column_stack([probs, y.astype(np.float64)])


def _features_from_logits(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return attack_features(expit(logits), labels)


# --------------------------------------------------------------------------- results


@dataclass
class AttackResult:
    """One attack on one evaluation set: scores (higher = member), truth and bookkeeping.

    ``info`` holds JSON-friendly facts (sizes, settings, number of trainings); ``artifacts``
    holds objects for inspection (the fitted attack model, reference statistics).
    """

    name: str
    scores: np.ndarray
    is_member: np.ndarray
    sample_indices: np.ndarray
    predictions: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.scores = np.asarray(self.scores, dtype=np.float64)
        self.is_member = np.asarray(self.is_member, dtype=bool)
        self.sample_indices = np.asarray(self.sample_indices)
        n = self.scores.shape[0]
        if self.is_member.shape != (n,) or self.sample_indices.shape != (n,):
            raise ValueError("scores, is_member and sample_indices must have the same length")
        if self.predictions is not None:
            self.predictions = np.asarray(self.predictions, dtype=bool)
            if self.predictions.shape != (n,):
                raise ValueError("predictions must have one entry per evaluated individual")

    def summary(self, **metrics_kwargs: Any) -> dict[str, Any]:
        """metrics.summarize_attack on this result (accuracy only from its hard predictions)."""
        return metrics.summarize_attack(
            self.scores, self.is_member, predictions=self.predictions, **metrics_kwargs
        )

    def to_record(self) -> dict[str, Any]:
        """JSON-friendly form (no artifacts)."""
        return {
            "name": self.name,
            "sample_indices": self.sample_indices.tolist(),
            "is_member": self.is_member.tolist(),
            "scores": self.scores.tolist(),
            "predictions": None if self.predictions is None else self.predictions.tolist(),
            "info": self.info,
        }


# --------------------------------------------------------------------------- evaluation sets


def membership_evaluation_set(
    members: np.ndarray, non_members: np.ndarray, seed: int = 0, size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Balanced evaluation set: ``size`` members and as many never-seen non-members, disjoint.

    Returns (indices, is_member), members first. Drawn without replacement by
    :func:`splits.balanced_membership_sample`; ``size=None`` takes the smaller side whole.
    """
    chosen_members, chosen_non_members = splits.balanced_membership_sample(
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


# --------------------------------------------------------------------------- shadow attack


def shadow_model_attack(
    target_model_predict: Any,
    X_eval: np.ndarray,
    y_eval: np.ndarray,
    is_member_eval: np.ndarray,
    X_shadow: np.ndarray,
    y_shadow: np.ndarray,
    *,
    train_fn: TrainFn,
    in_fraction: float = 0.5,
    seed: int = 0,
    balance_shadow: bool = False,
    eval_indices: np.ndarray | None = None,
) -> AttackResult:
    """The paper's attack: one shadow model, a random forest on [1 - p, p, y] (section 4.4).

    The shadow data is split at random, without overlap, ``in_fraction`` 'in' (trains the
    shadow model with ``train_fn``, the target's recipe in the white-box setting) / the rest
    'out'. The attack forest is trained on the shadow model's features of both sets, labelled
    in = 1 / out = 0, then labels the target's features on the evaluation set: its hard
    predictions give the paper's accuracy, ``predict_proba[:, 1]`` the ROC scores.

    The default ``in_fraction=0.5`` is what the authors' code ran: ``mia``'s
    ``ShadowModelBundle(shadow_dataset_size=len(shadow) // 2, num_models=1)`` draws
    ``2 * shadow_dataset_size`` distinct records (``choice(..., replace=False)``), trains the
    shadow model on the first half and uses the second as 'out', so the forest learns from
    50% in / 50% out. The 80/20 split of the paper's text made every depth-2 leaf say "in"
    on weak signals (a constant guess: accuracy exactly 0.500 on a balanced evaluation set).
    ``balance_shadow=True`` downsamples 'in' without replacement to the size of 'out' first
    (a no-op at 0.5). Where we differ from the authors' run: the shadow data is what the
    caller passes (the authors first set 20% of the shadow half aside as evaluation
    non-members), an odd count uses every record where ``mia`` leaves one unused, the forest
    sees [1 - p, p, y] where the one-unit sigmoid's Keras ``predict_proba`` gave ``mia`` [p, y],
    and seeds are derived from ``seed`` (``mia`` fixed 42; the authors' forest was unseeded).
    """
    logits_fn = as_logits_fn(target_model_predict)
    X_eval, X_shadow = np.asarray(X_eval), np.asarray(X_shadow)
    y_eval = _labels01(y_eval, X_eval.shape[0])
    y_shadow = _labels01(y_shadow, X_shadow.shape[0])
    split = splits.shadow_in_out_split(
        np.arange(X_shadow.shape[0]), seed=seed, in_fraction=in_fraction
    )
    shadow_in, shadow_out = split.shadow_in, split.shadow_out

    shadow_model = as_logits_fn(
        train_fn(X_shadow[shadow_in], y_shadow[shadow_in], _derive_seed(seed, _TAG_SHADOW_MODEL))
    )
    attack_in = shadow_in
    if balance_shadow and shadow_in.size > shadow_out.size:
        rng = np.random.default_rng([seed, _TAG_SHADOW_MODEL])
        attack_in = np.sort(rng.choice(shadow_in, size=shadow_out.size, replace=False))
    attack_rows = np.concatenate([attack_in, shadow_out])
    attack_X = _features_from_logits(shadow_model(X_shadow[attack_rows]), y_shadow[attack_rows])
    attack_y = np.r_[np.ones(attack_in.size, int), np.zeros(shadow_out.size, int)]
    forest = RandomForestClassifier(**ATTACK_FOREST_PARAMS, random_state=seed)
    forest.fit(attack_X, attack_y)

    target_X = _features_from_logits(logits_fn(X_eval), y_eval)
    member_column = list(forest.classes_).index(1)
    scores = forest.predict_proba(target_X)[:, member_column]
    predictions = forest.predict(target_X) == 1
    shadow_logits_in = shadow_model(X_shadow[shadow_in])
    shadow_logits_out = shadow_model(X_shadow[shadow_out])
    info = {
        "attack": "shadow",
        "n_model_trainings": 1,
        "shadow_in_size": int(shadow_in.size),
        "shadow_out_size": int(shadow_out.size),
        "attack_train_in_size": int(attack_in.size),
        "balance_shadow": bool(balance_shadow),
        "in_fraction": float(in_fraction),
        "shadow_split": (
            "random disjoint in/out halves, as mia's ShadowModelBundle (authors' code)"
            if math.isclose(in_fraction, 0.5)
            else f"random disjoint split, {in_fraction:g} in / {1 - in_fraction:g} out"
        ),
        "forest": dict(ATTACK_FOREST_PARAMS, random_state=int(seed)),
        "features": "[1 - p, p, y] (label as one 0/1 column)",
        "shadow_train_accuracy": _accuracy(shadow_logits_in, y_shadow[shadow_in]),
        "shadow_out_accuracy": _accuracy(shadow_logits_out, y_shadow[shadow_out]),
        "attack_train_accuracy": float(forest.score(attack_X, attack_y)),
        "seed": int(seed),
    }
    return AttackResult(
        name="shadow",
        scores=scores,
        is_member=is_member_eval,
        sample_indices=_default_indices(eval_indices, X_eval.shape[0]),
        predictions=predictions,
        info=info,
        artifacts={"attack_model": forest, "shadow_split": split},
    )


def _accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean((logits > 0).astype(int) == labels))


def _default_indices(indices: np.ndarray | None, n: int) -> np.ndarray:
    if indices is None:
        return np.arange(n)
    indices = np.asarray(indices)
    if indices.shape != (n,):
        raise ValueError(f"eval_indices must have shape ({n},), got {indices.shape}")
    return indices


# --------------------------------------------------------------------------- loss attack


def loss_attack(
    target_model_predict: Any,
    X_eval: np.ndarray,
    y_eval: np.ndarray,
    is_member: np.ndarray,
    *,
    train_loss: float | None = None,
    eval_indices: np.ndarray | None = None,
) -> AttackResult:
    """Yeom et al. (2018): score = -(cross-entropy of the true label), from logits.

    With ``train_loss`` (the target's average training loss, which Yeom's adversary knows) the
    hard prediction is "member iff loss < train_loss": a threshold fixed before seeing the
    evaluation set, so the accuracy is fair. Without it there are no predictions:
    ``summary()`` then reports accuracy, balanced accuracy and advantage as None and the
    best-threshold numbers only under their optimistic ``best_threshold_*`` keys.
    """
    X_eval = np.asarray(X_eval)
    scores = true_label_log_likelihood(as_logits_fn(target_model_predict)(X_eval), y_eval)
    predictions = None if train_loss is None else (-scores < float(train_loss))
    info = {
        "attack": "loss",
        "n_model_trainings": 0,
        "threshold_rule": (
            "none (no training loss given: scores only)"
            if train_loss is None
            else "Yeom: member iff loss < mean training loss"
        ),
        "train_loss": None if train_loss is None else float(train_loss),
    }
    return AttackResult(
        name="loss",
        scores=scores,
        is_member=is_member,
        sample_indices=_default_indices(eval_indices, X_eval.shape[0]),
        predictions=predictions,
        info=info,
    )


# --------------------------------------------------------------------------- LiRA


def reference_model_plan(
    n_pool: int,
    n_reference: int,
    seed: int = 0,
    *,
    eligible: np.ndarray | None = None,
    keep_fraction: float = 0.5,
) -> np.ndarray:
    """In-masks (n_reference, n_pool): which pool records train which reference model.

    As in Carlini et al.'s code, every eligible record is IN exactly
    ``round(keep_fraction * n_reference)`` models (chosen at random per record), so each model
    trains on about ``keep_fraction`` of the eligible records. Records outside ``eligible``
    (a boolean mask or index array) are IN no model: the offline attack makes every evaluation
    candidate ineligible.
    """
    if n_reference < 1 or n_pool < 1:
        raise ValueError("n_pool and n_reference must be positive")
    n_in = int(round(keep_fraction * n_reference))
    if not 0 < n_in < n_reference:
        raise ValueError(
            f"keep_fraction={keep_fraction} with {n_reference} models puts each record in "
            f"{n_in} of them; need at least one IN and one OUT (use n_reference >= 2)"
        )
    allowed = np.ones(n_pool, bool)
    if eligible is not None:
        eligible = np.asarray(eligible)
        if eligible.dtype == bool:
            if eligible.shape != (n_pool,):
                raise ValueError(f"boolean eligible mask must have shape ({n_pool},)")
            allowed = eligible.copy()
        else:
            allowed = np.zeros(n_pool, bool)
            allowed[eligible.astype(np.int64)] = True
    rng = np.random.default_rng([seed, _TAG_REFERENCE_PLAN])
    # Rank of each model within a record's column: a uniform random permutation per record.
    ranks = rng.random((n_reference, n_pool)).argsort(axis=0).argsort(axis=0)
    return (ranks < n_in) & allowed[None, :]


def _gaussian_fit(
    phi: np.ndarray, mask: np.ndarray, fixed_variance: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and std of ``phi`` over rows where ``mask``; pooled std if fixed."""
    counts = mask.sum(axis=0)
    if np.any(counts < 1):
        raise ValueError("every candidate needs at least one reference observation on each side")
    mean = np.where(mask, phi, 0.0).sum(axis=0) / counts
    squares = np.where(mask, (phi - mean[None, :]) ** 2, 0.0)
    if fixed_variance:
        # One variance for all candidates: within-candidate deviations pooled, one degree of
        # freedom per candidate mean spent.
        dof = int(counts.sum() - counts.size)
        if dof < 1:
            raise ValueError("fixed variance needs more than one observation for some candidate")
        std = np.full(counts.shape, math.sqrt(squares.sum() / dof))
    else:
        if np.any(counts < 2):
            raise ValueError(
                "per-candidate variance needs at least 2 reference models on each side; "
                "use more reference models or fixed_variance=True"
            )
        std = np.sqrt(squares.sum(axis=0) / (counts - 1))
    return mean, np.maximum(std, _MIN_STD)


def lira_offline_scores(
    phi_target: np.ndarray, phi_reference_out: np.ndarray, *, fixed_variance: bool = True
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Offline LiRA: -log P(Z > phi) for Z ~ N(mu_out, sigma_out), per candidate (column).

    One-sided because training raises the true-label confidence; the log form keeps far tails
    distinct instead of rounding the p-value to 0.
    """
    phi_reference_out = np.atleast_2d(np.asarray(phi_reference_out, dtype=np.float64))
    mask = np.ones(phi_reference_out.shape, bool)
    mu_out, sigma_out = _gaussian_fit(phi_reference_out, mask, fixed_variance)
    scores = -stats.norm.logsf(np.asarray(phi_target, dtype=np.float64), mu_out, sigma_out)
    return scores, {"mu_out": mu_out, "sigma_out": sigma_out}


def lira_online_scores(
    phi_target: np.ndarray,
    phi_reference: np.ndarray,
    in_mask: np.ndarray,
    *,
    fixed_variance: bool = True,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Online LiRA: log N(phi; mu_in, sigma_in) - log N(phi; mu_out, sigma_out) per candidate."""
    phi_reference = np.asarray(phi_reference, dtype=np.float64)
    in_mask = np.asarray(in_mask, dtype=bool)
    if phi_reference.shape != in_mask.shape:
        raise ValueError("phi_reference and in_mask must have the same shape")
    mu_in, sigma_in = _gaussian_fit(phi_reference, in_mask, fixed_variance)
    mu_out, sigma_out = _gaussian_fit(phi_reference, ~in_mask, fixed_variance)
    phi = np.asarray(phi_target, dtype=np.float64)
    scores = stats.norm.logpdf(phi, mu_in, sigma_in) - stats.norm.logpdf(phi, mu_out, sigma_out)
    fit = {"mu_in": mu_in, "sigma_in": sigma_in, "mu_out": mu_out, "sigma_out": sigma_out}
    return scores, fit


#: Level of the offline LiRA test behind its hard predictions, fixed before any evaluation.
LIRA_OFFLINE_LEVEL = 0.5


def lira_decision_rule(*, online: bool = False, level: float = LIRA_OFFLINE_LEVEL) -> str:
    """Plain-words statement of the rule :func:`lira_predictions` applies (for ``info``)."""
    if online:
        return "online LiRA: member iff likelihood ratio IN/OUT > 1 (score > 0), fixed a priori"
    return (
        f"offline LiRA: member iff P(Z >= phi | Z ~ OUT Gaussian) <= {level:g} "
        f"(score >= -log {level:g}), level fixed a priori"
    )


def lira_predictions(
    scores: Any, *, online: bool = False, level: float = LIRA_OFFLINE_LEVEL
) -> np.ndarray:
    """Hard LiRA guesses by a rule fixed in advance: offline p-value <= level; online LR > 1.

    Offline scores are -log p, p the one-sided p-value of the target's statistic against the
    OUT Gaussian of the reference models (:func:`lira_offline_scores`), so "member iff the test
    rejects at ``level``" is ``score >= -log(level)``. The default level 1/2 flags a record
    when the target is more confident on it than the typical model that never saw it (phi above
    the OUT mean). Why 1/2: for a member shift d of the statistic (equal variances) the
    accuracy-optimal threshold on a balanced set is the midpoint mu_out + d / 2, which tends to
    mu_out (level 1/2) as d -> 0: the most powerful fixed choice for weak leakage, the DP regime
    studied here. Small levels (e.g. 0.01) suit low-FPR claims instead. Online scores are the
    log likelihood ratio IN/OUT, and "member iff ratio > 1" is the Bayes rule for the balanced
    evaluation design (prior 1/2); it has no level to choose. Neither rule looks at evaluation
    labels, so with no leakage (member and non-member scores exchangeable) the expected
    accuracy on a balanced set is exactly 1/2, whether or not the reference Gaussians fit.
    """
    values = np.asarray(scores, dtype=np.float64)
    if online:
        return values > 0.0
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level!r}")
    return values >= -math.log(level)


def _progress(iterable: Iterable[Any], progress: bool, **kwargs: Any) -> Iterable[Any]:
    if not progress:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, **kwargs)


def _progress_bar(total: int, progress: bool, **kwargs: Any) -> Any:
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, **kwargs)


def lira_attack(
    target_model_logits_fn: Any,
    X_pool: np.ndarray,
    y_pool: np.ndarray,
    eval_indices: np.ndarray,
    is_member: np.ndarray,
    *,
    train_fn: TrainFn,
    n_reference: int = 8,
    online: bool = False,
    fixed_variance: bool = True,
    keep_fraction: float = 0.5,
    seed: int = 0,
    progress: bool = True,
    sample_indices: np.ndarray | None = None,
    level: float = LIRA_OFFLINE_LEVEL,
) -> AttackResult:
    """Likelihood-ratio attack (Carlini et al. 2022) with ``n_reference`` reference models.

    ``X_pool, y_pool`` is all the data the adversary holds; ``eval_indices`` (rows of the pool)
    are the candidates whose membership is tested. Reference models are trained with
    ``train_fn`` (the target's recipe) following :func:`reference_model_plan`:

    * offline: on random halves of the pool WITHOUT any candidate, so every reference model is
      OUT for every candidate; score = -log P(Z > phi), Z ~ N(mu_out, sigma_out);
    * online: on random halves of the whole pool, candidates included (each is IN exactly
      half the models); score = log N(phi; mu_in, sigma_in) - log N(phi; mu_out, sigma_out).
      The candidates being in the adversary's pool is LiRA's standard threat model: the
      adversary holds the records it asks about, and may train on them.

    phi is :func:`lira_statistic` of each model on each candidate. ``fixed_variance=True`` fits
    one pooled std per side, which Carlini et al. recommend for few reference models.
    ``sample_indices`` (default: ``eval_indices``) labels the candidates in the result. Hard
    predictions: :func:`lira_predictions` (offline: the test at ``level``; online: ratio > 1).
    """
    logits_fn = as_logits_fn(target_model_logits_fn)
    X_pool = np.asarray(X_pool)
    y_pool = _labels01(y_pool, X_pool.shape[0])
    eval_indices = np.asarray(eval_indices, dtype=np.int64)
    if np.unique(eval_indices).size != eval_indices.size:
        raise ValueError("eval_indices contains a pool row twice")
    n_pool = X_pool.shape[0]
    eligible = np.ones(n_pool, bool)
    if not online:
        eligible[eval_indices] = False
    plan = reference_model_plan(
        n_pool, n_reference, seed, eligible=eligible, keep_fraction=keep_fraction
    )
    X_candidates, y_candidates = X_pool[eval_indices], y_pool[eval_indices]
    phi_target = lira_statistic(logits_fn(X_candidates), y_candidates)
    phi_reference = np.empty((n_reference, eval_indices.size))
    models = _progress(
        range(n_reference), progress, desc=f"LiRA {'online' if online else 'offline'}", leave=False
    )
    for k in models:
        rows = np.flatnonzero(plan[k])
        model = as_logits_fn(
            train_fn(X_pool[rows], y_pool[rows], _derive_seed(seed, _TAG_REFERENCE_MODEL, k))
        )
        phi_reference[k] = lira_statistic(model(X_candidates), y_candidates)

    in_mask = plan[:, eval_indices]
    if online:
        scores, fit = lira_online_scores(
            phi_target, phi_reference, in_mask, fixed_variance=fixed_variance
        )
    else:
        scores, fit = lira_offline_scores(phi_target, phi_reference, fixed_variance=fixed_variance)
    info = {
        "attack": "lira_online" if online else "lira_offline",
        "n_reference": int(n_reference),
        "n_model_trainings": int(n_reference),
        "online": bool(online),
        "fixed_variance": bool(fixed_variance),
        "keep_fraction": float(keep_fraction),
        "pool_size": int(n_pool),
        "n_candidates": int(eval_indices.size),
        "reference_train_sizes": plan.sum(axis=1).astype(int).tolist(),
        "decision_rule": lira_decision_rule(online=online, level=level),
        "seed": int(seed),
    }
    return AttackResult(
        name=info["attack"],
        scores=scores,
        is_member=is_member,
        sample_indices=eval_indices if sample_indices is None else np.asarray(sample_indices),
        predictions=lira_predictions(scores, online=online, level=level),
        info=info,
        artifacts={
            "phi_target": phi_target,
            "phi_reference": phi_reference,
            "in_mask": in_mask,
            **fit,
        },
    )


# --------------------------------------------------------------------------- orchestration


def _attack_trainings(name: str, n_reference: int) -> int:
    return _FIXED_TRAININGS.get(name, n_reference)


def _resolve_attack_names(attacks: Sequence[str], online: bool) -> list[str]:
    names = []
    for name in attacks:
        if name not in ATTACK_NAMES:
            raise ValueError(f"unknown attack {name!r}; choose from {ATTACK_NAMES}")
        if name == "lira":
            name = "lira_online" if online else "lira_offline"
        if name in names:
            raise ValueError(f"attack {name!r} requested twice")
        names.append(name)
    return names


def summary_metrics(summary: dict[str, Any]) -> dict[str, float | None]:
    """The numbers :func:`run_attacks` aggregates over repeats, from one summary record.

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


def run_attacks(
    target_predict_logits: Any,
    X: np.ndarray,
    y: np.ndarray,
    members: np.ndarray,
    non_members: np.ndarray,
    shadow_pool: np.ndarray,
    *,
    train_fn: TrainFn,
    attacks: Sequence[str] = ("shadow", "loss", "lira"),
    repeats: int = 5,
    n_reference: int = 8,
    online: bool = False,
    fixed_variance: bool = True,
    seed: int = 0,
    progress: bool = True,
    black_box: bool = False,
    train_fn_black_box: TrainFn | None = None,
    eval_size: int | None = None,
    resample_evaluation: bool = True,
    target_train_loss: float | None = None,
    balance_shadow: bool = False,
    sample_ids: Any = None,
    metrics_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the chosen attacks ``repeats`` times against one target; per-repeat results + means.

    ``members`` are the target's training records, ``non_members`` records it never saw,
    ``shadow_pool`` the adversary's own data (indices into ``X``); it must not contain a member
    (the paper's disjointness assumption). Each repeat draws a new balanced evaluation set
    (unless ``resample_evaluation=False``), a new shadow split and shadow model and new
    reference models, from a seed derived from (``seed``, repeat). Evaluation candidates are
    removed from the pool the shadow and offline reference models train on.

    White box (default): shadow and reference models use ``train_fn``, the target's recipe.
    ``black_box=True``: they use ``train_fn_black_box`` (e.g. :func:`black_box_train_fn`) and the
    target is queried through its output probability only (:func:`probability_only`).

    Returns ``{"results": {attack: [AttackResult per repeat]}, "summaries": {attack: [summary
    dict per repeat]}, "aggregate": {attack: {metric: {mean, std (ddof=1), n, values}}},
    "info": {...}}``; ``info["n_model_trainings"]`` counts the trainings per attack and repeat.
    """
    X = np.asarray(X)
    y = _labels01(y, X.shape[0])
    members = np.asarray(members, dtype=np.int64)
    non_members = np.asarray(non_members, dtype=np.int64)
    shadow_pool = np.asarray(shadow_pool, dtype=np.int64)
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    if np.intersect1d(members, non_members).size:
        raise ValueError("members and non_members share an index")
    if np.intersect1d(members, shadow_pool).size:
        raise ValueError("the shadow pool contains target members; it must be disjoint from them")
    if sample_ids is not None:
        assert_disjoint_ids(sample_ids, members, non_members)
    names = _resolve_attack_names(attacks, online)
    if black_box:
        if train_fn_black_box is None:
            raise ValueError("black_box=True needs train_fn_black_box (see black_box_train_fn)")
        target = probability_only(target_predict_logits)
        adversary_train_fn = train_fn_black_box
    else:
        target = as_logits_fn(target_predict_logits)
        adversary_train_fn = train_fn
    metrics_kwargs = dict(metrics_kwargs or {})

    results: dict[str, list[AttackResult]] = {name: [] for name in names}
    summaries: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    evaluation_sizes: list[int] = []
    bar = _progress_bar(repeats * len(names), progress, desc="attacks")
    for repeat in range(repeats):
        repeat_seed = _derive_seed(seed, _TAG_REPEAT, repeat)
        eval_indices, is_member = membership_evaluation_set(
            members, non_members, seed=repeat_seed if resample_evaluation else seed, size=eval_size
        )
        if sample_ids is not None:
            assert_disjoint_ids(sample_ids, eval_indices[is_member], eval_indices[~is_member])
        evaluation_sizes.append(int(eval_indices.size))
        # The adversary's own training data never contains an evaluation candidate.
        adversary_rows = np.setdiff1d(shadow_pool, eval_indices)
        for name in names:
            if bar is not None:
                bar.set_postfix_str(f"repeat {repeat + 1}/{repeats}: {name}")
            if name == "shadow":
                result = shadow_model_attack(
                    target,
                    X[eval_indices],
                    y[eval_indices],
                    is_member,
                    X[adversary_rows],
                    y[adversary_rows],
                    train_fn=adversary_train_fn,
                    seed=repeat_seed,
                    balance_shadow=balance_shadow,
                    eval_indices=eval_indices,
                )
            elif name == "loss":
                result = loss_attack(
                    target,
                    X[eval_indices],
                    y[eval_indices],
                    is_member,
                    train_loss=target_train_loss,
                    eval_indices=eval_indices,
                )
            else:
                # Pool = the adversary's data, then the candidates (the last rows).
                pool = np.concatenate([adversary_rows, eval_indices])
                result = lira_attack(
                    target,
                    X[pool],
                    y[pool],
                    np.arange(adversary_rows.size, pool.size),
                    is_member,
                    train_fn=adversary_train_fn,
                    n_reference=n_reference,
                    online=name == "lira_online",
                    fixed_variance=fixed_variance,
                    seed=repeat_seed,
                    progress=progress,
                    sample_indices=eval_indices,
                )
            result.info.update(
                repeat=repeat,
                repeat_seed=repeat_seed,
                black_box=bool(black_box),
                adversary_pool_size=int(adversary_rows.size),
            )
            results[name].append(result)
            summaries[name].append(result.summary(**metrics_kwargs))
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.close()

    trainings = {name: _attack_trainings(name, n_reference) for name in names}
    info = {
        "attacks": names,
        "repeats": int(repeats),
        "seed": int(seed),
        "black_box": bool(black_box),
        "n_reference": int(n_reference),
        "fixed_variance": bool(fixed_variance),
        "evaluation_sizes": evaluation_sizes,
        "resample_evaluation": bool(resample_evaluation),
        "n_members_available": int(members.size),
        "n_non_members_available": int(non_members.size),
        "shadow_pool_size": int(shadow_pool.size),
        "n_model_trainings": {
            "per_repeat": trainings,
            "per_attack_total": {name: count * repeats for name, count in trainings.items()},
            "total": int(sum(trainings.values()) * repeats),
        },
    }
    aggregate = {
        name: aggregate_repeats([summary_metrics(s) for s in summaries[name]]) for name in names
    }
    return {"results": results, "summaries": summaries, "aggregate": aggregate, "info": info}


def aggregate_frame(run: Mapping[str, Any]) -> pd.DataFrame:
    """The ``aggregate`` of :func:`run_attacks` as a table: one row per (attack, metric)."""
    rows = [
        {"attack": attack, "metric": metric, **{k: v for k, v in stat.items() if k != "values"}}
        for attack, by_metric in run["aggregate"].items()
        for metric, stat in by_metric.items()
    ]
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- individuals


def _collect_results(results: Any) -> list[AttackResult]:
    if isinstance(results, AttackResult):
        return [results]
    if isinstance(results, Mapping):
        if "results" in results:
            results = results["results"]
        collected: list[AttackResult] = []
        for value in results.values():
            collected.extend(_collect_results(value))
        return collected
    collected = []
    for value in results:
        collected.extend(_collect_results(value))
    return collected


def _percentile_ranks(scores: np.ndarray) -> np.ndarray:
    """Score ranks scaled to [0, 1] within one evaluation set (ties share their mean rank)."""
    if scores.size == 1:
        return np.full(1, 0.5)
    return (stats.rankdata(scores) - 1.0) / (scores.size - 1.0)


def nearest_neighbour_distance(
    X: np.ndarray, rows: np.ndarray, n_neighbors: int = 10, chunk_size: int = 256
) -> np.ndarray:
    """Mean distance of each of ``rows`` to its ``n_neighbors`` nearest OTHER individuals in X.

    Distance = squared Euclidean / (4 p): for +-1 genotypes the fraction of differing variants
    (normalised Hamming distance).
    """
    # Contiguous: a strided view (e.g. every 10th variant) sends matmul down numpy's non-BLAS
    # loop, measured 50x slower on the real data (37.7 s against 0.74 s).
    X = np.ascontiguousarray(X, dtype=np.float32)
    rows = np.asarray(rows, dtype=np.int64)
    n, p = X.shape
    if not 1 <= n_neighbors < n:
        raise ValueError(f"n_neighbors must be in 1..{n - 1}")
    norms = np.einsum("ij,ij->i", X, X, dtype=np.float64)
    out = np.empty(rows.size)
    for start in range(0, rows.size, chunk_size):
        chunk = rows[start : start + chunk_size]
        dots = (X[chunk] @ X.T).astype(np.float64)
        d2 = norms[chunk, None] + norms[None, :] - 2.0 * dots
        d2[np.arange(chunk.size), chunk] = np.inf  # not one's own neighbour
        nearest = np.partition(d2, n_neighbors - 1, axis=1)[:, :n_neighbors]
        out[start : start + chunk.size] = np.maximum(nearest, 0.0).mean(axis=1) / (4.0 * p)
    return out


def pca_mahalanobis_distance(
    X: np.ndarray, rows: np.ndarray, n_components: int = 10, seed: int = 0
) -> np.ndarray:
    """Mahalanobis distance of ``rows`` from the population centre on the top principal components."""
    from sklearn.decomposition import PCA

    X = np.asarray(X, dtype=np.float32)
    n_components = min(n_components, X.shape[0] - 1, X.shape[1])
    pca = PCA(n_components=n_components, whiten=True, random_state=seed)
    pca.fit(X)
    whitened = pca.transform(X[np.asarray(rows, dtype=np.int64)])
    return np.sqrt(np.sum(whitened.astype(np.float64) ** 2, axis=1))


def per_individual_risk(
    results: Any,
    sample_ids: Any,
    X: np.ndarray,
    *,
    n_neighbors: int = 10,
    n_components: int = 10,
    risk_attacks: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Per evaluated individual: scores, membership, risk and genotype outlierness.

    ``results``: the dict of :func:`run_attacks`, a mapping of name -> results, or a list of
    AttackResults. Per attack, ``score_<attack>`` is the individual's mean score over the repeats
    it was evaluated in and ``rank_<attack>`` the mean percentile rank of its score within each
    repeat's evaluation set (0 = least, 1 = most member-like). ``risk`` is the mean rank over
    ``risk_attacks`` (default: all). Outlierness: ``knn_distance`` (mean normalised Hamming
    distance to the ``n_neighbors`` nearest other individuals of X) and ``pca_mahalanobis`` (on
    ``n_components`` PCs of X). ``df.attrs["spearman"]`` holds :func:`risk_outlier_correlation`.
    """
    collected = _collect_results(results)
    if not collected:
        raise ValueError("no attack results given")
    ids = np.asarray(sample_ids)
    per_attack: dict[str, dict[str, list[pd.Series]]] = {}
    membership: dict[int, bool] = {}
    evaluations: dict[str, dict[int, int]] = {}
    for result in collected:
        index = result.sample_indices.astype(np.int64)
        for i, member in zip(index.tolist(), result.is_member.tolist(), strict=True):
            if membership.setdefault(i, member) != member:
                raise ValueError(f"individual {ids[i]!r} is a member in one result and not another")
        entry = per_attack.setdefault(result.name, {"score": [], "rank": []})
        entry["score"].append(pd.Series(result.scores, index=index))
        entry["rank"].append(pd.Series(_percentile_ranks(result.scores), index=index))
        counts = evaluations.setdefault(result.name, {})
        for i in index.tolist():
            counts[i] = counts.get(i, 0) + 1

    index = np.array(sorted(membership), dtype=np.int64)
    frame = pd.DataFrame(
        {
            "sample_id": ids[index],
            "index": index,
            "is_member": [membership[i] for i in index.tolist()],
            # Times evaluated (by the attack that saw the individual most often).
            "n_evaluations": [
                max(counts.get(i, 0) for counts in evaluations.values()) for i in index.tolist()
            ],
        }
    )
    for name, entry in per_attack.items():
        frame[f"score_{name}"] = (
            pd.concat(entry["score"]).groupby(level=0).mean().reindex(index).to_numpy()
        )
        frame[f"rank_{name}"] = (
            pd.concat(entry["rank"]).groupby(level=0).mean().reindex(index).to_numpy()
        )
    chosen = list(per_attack) if risk_attacks is None else list(risk_attacks)
    missing = [name for name in chosen if name not in per_attack]
    if missing:
        raise ValueError(f"no results for risk attacks {missing}; have {list(per_attack)}")
    frame["risk"] = frame[[f"rank_{name}" for name in chosen]].mean(axis=1, skipna=True)
    frame["knn_distance"] = nearest_neighbour_distance(X, index, n_neighbors=n_neighbors)
    frame["pca_mahalanobis"] = pca_mahalanobis_distance(X, index, n_components=n_components)
    frame.attrs["risk_attacks"] = chosen
    frame.attrs["spearman"] = risk_outlier_correlation(frame)
    return frame.sort_values("risk", ascending=False, ignore_index=True)


def risk_outlier_correlation(frame: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Spearman rho (and p-value) between ``risk`` and each outlier measure, all and members only."""
    out: dict[str, dict[str, float]] = {}
    for measure in ("knn_distance", "pca_mahalanobis"):
        for subset, rows in (("all", frame), ("members", frame[frame["is_member"]])):
            if len(rows) < 3:
                continue
            rho, p_value = stats.spearmanr(rows["risk"], rows[measure])
            out[f"{measure}/{subset}"] = {
                "rho": float(rho),
                "p_value": float(p_value),
                "n": len(rows),
            }
    return out

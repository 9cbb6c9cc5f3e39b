"""What every attack shares: access to a model's outputs, the statistics computed from them,
and the result an attack returns.

Model access. Attacks query models through a *logits function* ``X -> logits`` of shape (n,),
one logit per example as :mod:`dpmia_utils.models` builds them. :func:`as_logits_fn` turns a
Keras model, a :class:`~dpmia_utils.training.TrainResult`, a scikit-learn classifier with
``decision_function`` or a plain callable into one; :func:`probability_only` restricts it to
what a black-box API returns. Shadow and reference models come from a caller-supplied
``train_fn(X_train, y_train, seed) -> model`` (anything :func:`as_logits_fn` accepts), so the
attacks work with any trainer: :func:`keras_train_fn` wraps
:func:`dpmia_utils.training.train_model`, and tests pass a cheap scikit-learn one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import expit

from dpmia_utils import metrics

LogitsFn = Callable[[np.ndarray], np.ndarray]
TrainFn = Callable[[np.ndarray, np.ndarray, int], Any]


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


def binary_labels(labels: Any, n: int) -> np.ndarray:
    """``labels`` as an int64 0/1 vector of length ``n``; ValueError otherwise."""
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
    y = binary_labels(labels, z.size)
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


# --------------------------------------------------------------------------- results


@dataclass
class AttackResult:
    """One attack on one evaluation set: scores (higher = member), truth and bookkeeping.

    ``sample_indices`` name the evaluated individuals (rows of the dataset); None numbers them
    0..n-1. ``info`` holds JSON-friendly facts (sizes, settings, number of trainings);
    ``artifacts`` holds objects for inspection (the fitted attack model, reference statistics).
    """

    name: str
    scores: np.ndarray
    is_member: np.ndarray
    sample_indices: np.ndarray | None
    predictions: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.scores = np.asarray(self.scores, dtype=np.float64)
        self.is_member = np.asarray(self.is_member, dtype=bool)
        n = self.scores.shape[0]
        if self.sample_indices is None:
            self.sample_indices = np.arange(n)
        self.sample_indices = np.asarray(self.sample_indices)
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

"""The training losses, their derivative in the logit, and the held-out evaluation.

``TrainConfig.loss = "logits"`` (the default) is binary cross-entropy from the logit ``z``.
``"paper-double-sigmoid"`` is the authors' code as it ran, a labelled ablation only: their
model ended in a sigmoid and their loss was ``BinaryCrossentropy(from_logits=True)``, so the
loss is ``BCE_from_logits(y, sigmoid(z))`` and its derivative
``(sigmoid(sigmoid(z)) - y) * sigmoid(z) * (1 - sigmoid(z))`` is at most a quarter of the
correct one. The model and its prediction (``z > 0``) are the same under both losses;
:func:`evaluate` always reports BCE from logits.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from dpmia_utils.models import predict_logits
from dpmia_utils.training.config import check_loss


def per_example_loss(labels: tf.Tensor, logits: tf.Tensor, loss: str = "logits") -> tf.Tensor:
    """The training loss of each example from its logit ``z`` (see :data:`.config.LOSSES`).

    ``"logits"``: binary cross-entropy from ``z``. ``"paper-double-sigmoid"``: binary
    cross-entropy from the "logit" ``sigmoid(z)``, as the authors' code computed it.
    """
    check_loss(loss)
    if loss == "paper-double-sigmoid":
        logits = tf.sigmoid(logits)
    return tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)


def loss_gradient(labels: tf.Tensor, logits: tf.Tensor, loss: str = "logits") -> tf.Tensor:
    """d per_example_loss / d logit for each example (the engines' residual).

    ``"logits"``: ``sigmoid(z) - y``, in [-1, 1]. ``"paper-double-sigmoid"``:
    ``(sigmoid(sigmoid(z)) - y) * sigmoid(z) * (1 - sigmoid(z))``, at most 1/4 in magnitude.
    """
    check_loss(loss)
    probability = tf.sigmoid(logits)
    if loss == "logits":
        return probability - labels
    return (tf.sigmoid(probability) - labels) * probability * (1.0 - probability)


def evaluate(model: tf.keras.Model, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Mean BCE from logits (no L1 term, no dropout) and accuracy of ``model`` on (X, y)."""
    y = np.asarray(y, dtype=np.float64)
    logits = predict_logits(model, X)
    # Stable BCE from logits: max(z, 0) - z*y + log(1 + exp(-|z|)).
    losses = np.maximum(logits, 0) - logits * y + np.log1p(np.exp(-np.abs(logits)))
    accuracy = np.mean((logits > 0).astype(np.float64) == y)
    return {"loss": float(np.mean(losses)), "accuracy": float(accuracy)}

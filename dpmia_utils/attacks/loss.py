"""The loss attack (Yeom et al. 2018): members have lower loss; no shadow model is trained."""

from __future__ import annotations

from typing import Any

import numpy as np

from .scores import AttackResult, as_logits_fn, true_label_log_likelihood


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
    scores = true_label_log_likelihood(
        as_logits_fn(target_model_predict)(np.asarray(X_eval)), y_eval
    )
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
    return AttackResult("loss", scores, is_member, eval_indices, predictions, info)

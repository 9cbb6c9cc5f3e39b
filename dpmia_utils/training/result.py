"""What a training run returns: the model and what the accountant and the records need.

Both training paths (the epoch loop and tensorflow-privacy under ``model.fit``) return a
:class:`TrainResult` with the same history keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf

from dpmia_utils.models import ModelSpec
from dpmia_utils.training.config import TrainConfig


@dataclass
class TrainResult:
    """A trained model and what the accountant and the records need to know about its run.

    ``steps`` is the number of noisy steps taken (empty Poisson batches included),
    ``expected_batch_size / n_train`` the sampling rate, ``microbatch_size > 1`` means the
    clipped sum's add/remove sensitivity is ``2 * l2_clip``, and ``batch_sizes`` holds the
    realised size of every step.
    """

    model: tf.keras.Model
    history: dict[str, list[float]]
    steps: int
    sampling: str
    expected_batch_size: int
    n_train: int
    seconds: float
    config: TrainConfig
    spec: ModelSpec
    microbatch_size: int = 1
    batch_sizes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    epoch_seconds: list[float] = field(default_factory=list)
    engine: str = "fast"
    #: Epochs loaded from a saved prefix of this training (.checkpoints), not computed here.
    resumed_epochs: int = 0

    @property
    def sampling_probability(self) -> float:
        """q = expected batch size / n (exact for Poisson, the usual approximation for shuffle)."""
        return self.expected_batch_size / self.n_train

    def summary(self) -> dict[str, Any]:
        """JSON-friendly description of the run (no model)."""
        return {
            "spec": self.spec.to_dict(),
            "config": self.config.to_dict(),
            "steps": self.steps,
            "sampling": self.sampling,
            "expected_batch_size": self.expected_batch_size,
            "n_train": self.n_train,
            "microbatch_size": self.microbatch_size,
            "mean_batch_size": float(np.mean(self.batch_sizes)) if self.batch_sizes.size else None,
            "seconds": self.seconds,
            "engine": self.engine,
            "resumed_epochs": self.resumed_epochs,
            "final": {k: v[-1] for k, v in self.history.items() if v},
        }


def empty_history() -> dict[str, list[float]]:
    """Per-epoch training and validation loss and accuracy, empty."""
    return {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}

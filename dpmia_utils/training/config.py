"""The settings of one training run (:class:`TrainConfig`), the seed tags, and the input check.

``TrainConfig`` is plain data (no TensorFlow): the stages build it from run parameters and
hash it into records. Every random stream of a training is named by ``(TrainConfig.seed, tag)``
through :mod:`dpmia_utils.seeds`, with one of the ``SEED_*`` tags below.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

Sampling = Literal["poisson", "shuffle"]
SAMPLINGS: tuple[str, ...] = ("poisson", "shuffle")

#: ``TrainConfig.loss`` values: the correct BCE from logits, and the authors' double sigmoid.
LOSSES: tuple[str, ...] = ("logits", "paper-double-sigmoid")

#: The engine name that runs tensorflow-privacy's Keras optimizer under ``model.fit``.
TF_PRIVACY_ENGINE = "tfp-keras"

# Tags that separate the seed streams derived from TrainConfig.seed.
SEED_INIT, SEED_SAMPLING, SEED_NOISE, SEED_FOLD, SEED_TFP, SEED_DROPOUT = 1, 2, 3, 4, 5, 6


def check_loss(loss: str) -> None:
    """Refuse a training loss that is not one of :data:`LOSSES`."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser, sampling, loss and DP-SGD settings of one training run.

    ``loss`` is ``"logits"`` (BCE from logits) or ``"paper-double-sigmoid"`` (the authors'
    ``BCE_from_logits(y, sigmoid(z))``, a labelled ablation; see :mod:`.losses`).
    """

    learning_rate: float = 0.01
    batch_size: int = 16
    epochs: int = 50
    dp: bool = False
    l2_clip: float = 1.0
    noise_multiplier: float = 1.0
    microbatch_fraction: float = 1.0
    sampling: Sampling = "poisson"
    seed: int = 0
    engine: str = "fast"
    loss: str = "logits"

    def __post_init__(self) -> None:
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {self.sampling!r}")
        check_loss(self.loss)
        if self.batch_size < 1 or self.epochs < 0:
            raise ValueError("batch_size must be >= 1 and epochs >= 0")
        if self.learning_rate <= 0:
            raise ValueError("learning_rate must be positive")
        if self.l2_clip <= 0 or self.noise_multiplier < 0:
            raise ValueError("l2_clip must be positive and noise_multiplier non-negative")
        if self.batch_size % self.microbatch_size != 0:
            raise ValueError(
                f"batch_size {self.batch_size} is not a multiple of the microbatch size "
                f"{self.microbatch_size} implied by microbatch_fraction={self.microbatch_fraction}"
            )

    @property
    def microbatch_size(self) -> int:
        """Examples per microbatch: ``1 / microbatch_fraction`` (must be a whole number)."""
        fraction = float(self.microbatch_fraction)
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"microbatch_fraction must be in (0, 1], got {fraction}")
        size = round(1.0 / fraction)
        if abs(size * fraction - 1.0) > 1e-9:
            raise ValueError(f"1 / microbatch_fraction must be an integer, got {fraction}")
        return size

    @property
    def num_microbatches(self) -> int:
        """Microbatches in a full (or, under Poisson sampling, expected-size) batch."""
        return self.batch_size // self.microbatch_size

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form for records and hashing."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Rebuild a config from :meth:`to_dict` output (unknown keys are an error)."""
        return cls(**data)


def training_arrays(
    X: np.ndarray, y: np.ndarray, batch_size: int, *, keep_integer_features: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Validated arrays: X (n, p) C-contiguous float32, y (n,) float32.

    ``keep_integer_features``: integer X (the stages' int8 genotypes) keeps its dtype, for a
    caller that converts it to float32 itself (exactly) where the copy costs less.
    """
    X = np.asarray(X)
    keep = keep_integer_features and np.issubdtype(X.dtype, np.integer)
    X = np.ascontiguousarray(X, dtype=X.dtype if keep else np.float32)
    y = np.asarray(y).astype(np.float32).ravel()
    if X.ndim != 2 or X.shape[0] != y.shape[0]:
        raise ValueError(f"X must be (n, p) and y (n,), got {X.shape} and {y.shape}")
    if batch_size > X.shape[0]:
        raise ValueError(f"batch_size {batch_size} exceeds the {X.shape[0]} training examples")
    return X, y

"""Cross-validation: one model per fold, each on its own seed, with per-fold accuracy and sparsity.

Fold ``k`` trains with the seed derived from ``(TrainConfig.seed, SEED_FOLD, k)``; the
standard deviations across folds are sample standard deviations (ddof=1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import tensorflow as tf

from dpmia_utils import seeds
from dpmia_utils.models import ModelSpec, sparsity
from dpmia_utils.training.config import SEED_FOLD, TrainConfig
from dpmia_utils.training.loop import train_model
from dpmia_utils.training.losses import evaluate
from dpmia_utils.training.result import TrainResult


@dataclass
class CVResult:
    """Per-fold accuracies, sparsity, models and histories of one cross-validated setting.

    Standard deviations use ddof=1 (sample standard deviation across folds).
    """

    spec: ModelSpec
    config: TrainConfig
    train_accuracy: list[float]
    test_accuracy: list[float]
    sparsity: list[float]
    models: list[tf.keras.Model]
    histories: list[dict[str, list[float]]]
    seconds: list[float]
    fold_seeds: list[int]
    train_results: list[TrainResult]

    @staticmethod
    def _std(values: list[float]) -> float:
        return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")

    @property
    def mean_train_accuracy(self) -> float:
        """Mean training accuracy over folds."""
        return float(np.mean(self.train_accuracy))

    @property
    def std_train_accuracy(self) -> float:
        """Sample standard deviation (ddof=1) of training accuracy over folds."""
        return self._std(self.train_accuracy)

    @property
    def mean_test_accuracy(self) -> float:
        """Mean held-out accuracy over folds."""
        return float(np.mean(self.test_accuracy))

    @property
    def std_test_accuracy(self) -> float:
        """Sample standard deviation (ddof=1) of held-out accuracy over folds."""
        return self._std(self.test_accuracy)

    def summary(self) -> dict[str, Any]:
        """JSON-friendly summary (no models)."""
        return {
            "spec": self.spec.to_dict(),
            "config": self.config.to_dict(),
            "folds": len(self.test_accuracy),
            "train_accuracy": list(self.train_accuracy),
            "test_accuracy": list(self.test_accuracy),
            "mean_train_accuracy": self.mean_train_accuracy,
            "std_train_accuracy": self.std_train_accuracy,
            "mean_test_accuracy": self.mean_test_accuracy,
            "std_test_accuracy": self.std_test_accuracy,
            "std_ddof": 1,
            "sparsity": list(self.sparsity),
            "seconds": list(self.seconds),
            "fold_seeds": list(self.fold_seeds),
        }


def cross_validate(
    X: np.ndarray,
    y: np.ndarray,
    spec: ModelSpec,
    config: TrainConfig,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    progress: bool = True,
) -> CVResult:
    """Train one model per (train_idx, test_idx) fold; fold k uses a seed derived from (seed, k).

    ``X`` may be any numeric dtype holding the model's input values exactly (the stages pass
    the +-1 genotypes as int8, a quarter of float32's memory); each fold's rows become float32
    only when it trains.
    """
    X = np.asarray(X)
    y = np.asarray(y)
    results: list[TrainResult] = []
    train_acc: list[float] = []
    test_acc: list[float] = []
    fold_sparsity: list[float] = []
    fold_seeds: list[int] = []
    for fold, (train_idx, test_idx) in enumerate(folds):
        if np.intersect1d(train_idx, test_idx).size:
            raise ValueError(f"fold {fold}: train and test indices overlap")
        fold_config = replace(config, seed=seeds.derive(config.seed, SEED_FOLD, fold))
        result = train_model(
            X[train_idx],
            y[train_idx],
            spec,
            fold_config,
            X_val=X[test_idx],
            y_val=y[test_idx],
            progress=progress,
        )
        results.append(result)
        fold_seeds.append(fold_config.seed)
        train_acc.append(evaluate(result.model, X[train_idx], y[train_idx])["accuracy"])
        test_acc.append(evaluate(result.model, X[test_idx], y[test_idx])["accuracy"])
        fold_sparsity.append(sparsity(result.model))
        if progress:
            print(
                f"fold {fold}: train acc {train_acc[-1]:.4f}, test acc {test_acc[-1]:.4f}, "
                f"non-zero {fold_sparsity[-1]:.3f}, {result.seconds:.1f}s"
            )
    return CVResult(
        spec=spec,
        config=config,
        train_accuracy=train_acc,
        test_accuracy=test_acc,
        sparsity=fold_sparsity,
        models=[r.model for r in results],
        histories=[r.history for r in results],
        seconds=[r.seconds for r in results],
        fold_seeds=fold_seeds,
        train_results=results,
    )

"""Hyperparameter selection by k-fold cross-validation, as the paper's ``GridSearchCV(cv=5)``.

The authors chose, for each model, the learning rate, epochs and batch size (and for DP runs
the microbatch fraction and clipping norm; for the CNN its kernels and dropout) with
scikit-learn's ``GridSearchCV`` over 5 folds of the target half, and Table 1 reports the
selected configuration's 5-fold mean test accuracy (``best_score_``). A run asks for the same
with a ``search`` parameter: a mapping from parameter name to the candidate values.

Work shared without changing a result: candidates that differ only in ``epochs`` are trained
once, to the largest epoch count, and scored at every requested epoch from the per-epoch
held-out accuracy. Batches, noise and dropout of epoch ``e`` depend only on the seed and
``e``, so the model after 50 of 100 epochs is bit for bit the model of a 50-epoch training
(a test checks this). The winner's fold models are then those of a training of exactly its
epochs (retrained when it stopped early). As in ``GridSearchCV``, the winner's score is
chosen on the folds it is reported on, so it is optimistic by the selection.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from dpmia_utils.constants import SEARCHABLE
from dpmia_utils.training.cv import CVResult, cross_validate


def candidates(params: dict[str, Any], search: dict[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the searched values over the run's other parameters, in grid order."""
    unknown = sorted(set(search) - set(SEARCHABLE))
    if unknown:
        raise ValueError(f"cannot search over {unknown}; searchable: {list(SEARCHABLE)}")
    keys = list(search)
    base = {k: v for k, v in params.items() if k != "search"}
    return [
        {**base, **dict(zip(keys, values, strict=True))}
        for values in itertools.product(*(search[k] for k in keys))
    ]


def _shares_trajectory(params: dict[str, Any]) -> bool:
    """A run whose noise does not depend on its epochs can be scored at earlier epochs."""
    return not (params["dp"] and params.get("target_epsilon") is not None)


@dataclass
class Selection:
    """The candidates' cross-validated scores, the winner's parameters and its CV result."""

    params: dict[str, Any]
    table: pd.DataFrame
    cv: CVResult  # of the winner
    searched: list[str]
    seconds: float
    trainings: int
    info: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """JSON-able summary for the target record."""
        return {
            "searched": self.searched,
            "selected": {k: self.params[k] for k in self.searched},
            "criterion": "highest mean held-out accuracy over the CV folds (GridSearchCV)",
            "candidates": self.table.to_dict(orient="records"),
            "n_candidates": int(len(self.table)),
            "fold_trainings": self.trainings,
            "seconds": self.seconds,
        }


def select_configuration(
    X: np.ndarray,
    y: np.ndarray,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    params: dict[str, Any],
    plan: Callable[[dict[str, Any]], Any],
    *,
    progress: bool = True,
) -> Selection:
    """Cross-validate every candidate of ``params["search"]``; return the best one.

    ``plan(candidate_params)`` turns run parameters into a
    :class:`dpmia_utils.stages.target.TrainingPlan` (model spec and training config).
    """
    from tqdm import tqdm

    search = params["search"]
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    groups: dict[str, list[dict[str, Any]]] = {}
    for candidate in candidates(params, search):
        key = repr(sorted((k, v) for k, v in candidate.items() if k != "epochs"))
        if not _shares_trajectory(candidate):
            key += f"|epochs={candidate['epochs']}"
        groups.setdefault(key, []).append(candidate)
    best: tuple[float, int] | None = None
    best_cv, best_params, trainings = None, None, 0
    for group in tqdm(list(groups.values()), desc="selection", disable=not progress):
        longest = max(group, key=lambda c: c["epochs"])
        training_plan = plan(longest)
        cv = cross_validate(X, y, training_plan.spec, training_plan.config, folds, progress=False)
        trainings += len(folds)
        for candidate in group:
            epoch = candidate["epochs"]
            accuracy = [history["val_accuracy"][epoch - 1] for history in cv.histories]
            index = len(rows)
            rows.append(
                {
                    **{k: candidate[k] for k in search},
                    "mean_test_accuracy": float(np.mean(accuracy)),
                    "std_test_accuracy": float(np.std(accuracy, ddof=1))
                    if len(accuracy) > 1
                    else None,
                    "fold_test_accuracy": [float(a) for a in accuracy],
                }
            )
            score = (float(np.mean(accuracy)), -index)  # ties: the first in grid order
            if best is None or score > best:
                best, best_params = score, candidate
                best_cv = cv if epoch == longest["epochs"] else None
    assert best_params is not None
    if best_cv is None:  # the winner stopped before its group's longest training
        winner_plan = plan(best_params)
        best_cv = cross_validate(X, y, winner_plan.spec, winner_plan.config, folds, progress=False)
        trainings += len(folds)
    table = pd.DataFrame(rows)
    table["rank"] = table["mean_test_accuracy"].rank(ascending=False, method="first").astype(int)
    return Selection(
        params=best_params,
        table=table,
        cv=best_cv,
        searched=list(search),
        seconds=time.perf_counter() - started,
        trainings=trainings,
    )

"""The likelihood-ratio attack, offline (Carlini et al. 2022).

K reference models are trained with the target's recipe on random halves of the adversary's
own data (:func:`reference_model_plan`), so none of them ever saw a candidate. For each
candidate the statistic phi (:func:`~dpmia_utils.attacks.scores.lira_statistic`) of the
reference models fits a Gaussian N(mu_out, sigma_out) (one pooled sigma, as Carlini et al.
recommend for few reference models); the score is how far the target's phi lies in its upper
tail, and the hard prediction a one-sided test at a level fixed in advance
(:func:`lira_predictions`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import stats

from dpmia_utils import seeds

from .scores import AttackResult, LogitsFn, TrainFn, as_logits_fn, lira_statistic

#: Standard deviations are floored here so a constant statistic (e.g. a model that ignores its
#: data) gives finite scores instead of 0/0.
_MIN_STD = 1e-12

#: Seed-stream tag of the reference models' training sets.
_TAG_REFERENCE_PLAN = 12

#: Level of the offline LiRA test behind its hard predictions, fixed before any evaluation.
LIRA_OFFLINE_LEVEL = 0.5


def reference_model_plan(
    n_pool: int, n_reference: int, seed: int = 0, *, keep_fraction: float = 0.5
) -> np.ndarray:
    """In-masks (n_reference, n_pool): which pool records train which reference model.

    As in Carlini et al.'s code, every record is IN exactly ``round(keep_fraction *
    n_reference)`` models (chosen at random per record), so each model trains on about
    ``keep_fraction`` of the pool.
    """
    if n_reference < 1 or n_pool < 1:
        raise ValueError("n_pool and n_reference must be positive")
    n_in = int(round(keep_fraction * n_reference))
    if not 0 < n_in < n_reference:
        raise ValueError(
            f"keep_fraction={keep_fraction} with {n_reference} models puts each record in "
            f"{n_in} of them; need at least one IN and one OUT (use n_reference >= 2)"
        )
    rng = seeds.generator(seed, _TAG_REFERENCE_PLAN)
    # Rank of each model within a record's column: a uniform random permutation per record.
    ranks = rng.random((n_reference, n_pool)).argsort(axis=0).argsort(axis=0)
    return ranks < n_in


def reference_statistics(
    train_fn: TrainFn,
    X: np.ndarray,
    y: np.ndarray,
    pool: np.ndarray,
    plan: np.ndarray,
    model_seeds: Sequence[int],
    candidates: np.ndarray,
    *,
    access: Callable[[Any], LogitsFn] = as_logits_fn,
    on_trained: Callable[[], Any] | None = None,
) -> np.ndarray:
    """phi of each reference model (rows) on each candidate (columns), shape (K, n_candidates).

    Model k trains with ``train_fn`` on the rows ``pool[plan[k]]`` of (X, y) with seed
    ``model_seeds[k]``; ``access`` is how the adversary reads it (:func:`as_logits_fn`, or
    :func:`~dpmia_utils.attacks.scores.probability_only` for a black box). Offline LiRA needs
    ``pool`` and ``candidates`` disjoint: every reference model is then OUT for every candidate.
    """
    if np.intersect1d(pool, candidates).size:
        raise ValueError("the reference pool holds a candidate; offline LiRA needs them disjoint")
    phis = []
    for mask, model_seed in zip(plan, model_seeds, strict=True):
        rows = pool[mask]
        logits = access(train_fn(X[rows], y[rows], model_seed))
        phis.append(lira_statistic(logits(X[candidates]), y[candidates]))
        if on_trained is not None:
            on_trained()
    return np.stack(phis)


def _gaussian_fit(phi: np.ndarray, fixed_variance: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and std of ``phi``; one pooled std for all columns if fixed."""
    count = phi.shape[0]
    mean = phi.sum(axis=0) / count
    squares = (phi - mean[None, :]) ** 2
    if fixed_variance:
        # One variance for all candidates: within-candidate deviations pooled, one degree of
        # freedom per candidate mean spent.
        dof = count * phi.shape[1] - phi.shape[1]
        if dof < 1:
            raise ValueError("fixed variance needs more than one observation for some candidate")
        std = np.full(phi.shape[1], math.sqrt(squares.sum() / dof))
    else:
        if count < 2:
            raise ValueError(
                "per-candidate variance needs at least 2 reference models; "
                "use more reference models or fixed_variance=True"
            )
        std = np.sqrt(squares.sum(axis=0) / (count - 1))
    return mean, np.maximum(std, _MIN_STD)


def lira_offline_scores(
    phi_target: np.ndarray, phi_reference_out: np.ndarray, *, fixed_variance: bool = True
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Offline LiRA: -log P(Z > phi) for Z ~ N(mu_out, sigma_out), per candidate (column).

    One-sided because training raises the true-label confidence; the log form keeps far tails
    distinct instead of rounding the p-value to 0.
    """
    phi_reference_out = np.atleast_2d(np.asarray(phi_reference_out, dtype=np.float64))
    mu_out, sigma_out = _gaussian_fit(phi_reference_out, fixed_variance)
    scores = -stats.norm.logsf(np.asarray(phi_target, dtype=np.float64), mu_out, sigma_out)
    return scores, {"mu_out": mu_out, "sigma_out": sigma_out}


def lira_decision_rule(level: float = LIRA_OFFLINE_LEVEL) -> str:
    """Plain-words statement of the rule :func:`lira_predictions` applies (for ``info``)."""
    return (
        f"offline LiRA: member iff P(Z >= phi | Z ~ OUT Gaussian) <= {level:g} "
        f"(score >= -log {level:g}), level fixed a priori"
    )


def lira_predictions(scores: Any, *, level: float = LIRA_OFFLINE_LEVEL) -> np.ndarray:
    """Hard LiRA guesses by a rule fixed in advance: the offline p-value <= level.

    Scores are -log p, p the one-sided p-value of the target's statistic against the OUT
    Gaussian of the reference models (:func:`lira_offline_scores`), so "member iff the test
    rejects at ``level``" is ``score >= -log(level)``. The default level 1/2 flags a record
    when the target is more confident on it than the typical model that never saw it (phi above
    the OUT mean). Why 1/2: for a member shift d of the statistic (equal variances) the
    accuracy-optimal threshold on a balanced set is the midpoint mu_out + d / 2, which tends to
    mu_out (level 1/2) as d -> 0: the most powerful fixed choice for weak leakage, the DP regime
    studied here. Small levels (e.g. 0.01) suit low-FPR claims instead. The rule never looks at
    evaluation labels, so with no leakage (member and non-member scores exchangeable) the
    expected accuracy on a balanced set is exactly 1/2, whether or not the Gaussians fit.
    """
    values = np.asarray(scores, dtype=np.float64)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level!r}")
    return values >= -math.log(level)


def lira_attack(
    target_model_predict: Any,
    X_eval: np.ndarray,
    y_eval: np.ndarray,
    is_member: np.ndarray,
    phi_reference_out: np.ndarray,
    *,
    name: str = "lira",
    eval_indices: np.ndarray | None = None,
    level: float = LIRA_OFFLINE_LEVEL,
) -> AttackResult:
    """Offline LiRA on one evaluation set, given the reference models' phi on its candidates.

    ``phi_reference_out`` (K, n) comes from :func:`reference_statistics` (columns in the order
    of ``X_eval``). Scores: :func:`lira_offline_scores` with a pooled variance; hard
    predictions: :func:`lira_predictions` at ``level``.
    """
    phi_target = lira_statistic(as_logits_fn(target_model_predict)(np.asarray(X_eval)), y_eval)
    scores, fit = lira_offline_scores(phi_target, phi_reference_out)
    info = {
        "n_reference": int(np.atleast_2d(phi_reference_out).shape[0]),
        "fixed_variance": True,
        "decision_rule": lira_decision_rule(level),
    }
    artifacts = {"phi_target": phi_target, "phi_reference": phi_reference_out, **fit}
    predictions = lira_predictions(scores, level=level)
    return AttackResult(name, scores, is_member, eval_indices, predictions, info, artifacts)

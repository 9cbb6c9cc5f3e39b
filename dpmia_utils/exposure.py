"""Individual exposure: who is at risk, and are they the genetic outliers?

Per evaluated individual, the attacks' scores become a risk (the mean percentile rank of the
score within each evaluation set, over repeats and attacks), set beside two measures of how
unusual the individual's genotype is: the mean distance to its nearest neighbours and the
Mahalanobis distance on the top principal components (:func:`per_individual_risk`), and their
Spearman correlation (:func:`risk_outlier_correlation`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .attacks import AttackResult


def _collect_results(results: Any) -> list[AttackResult]:
    if isinstance(results, AttackResult):
        return [results]
    if isinstance(results, Mapping):
        results = results.values()
    collected: list[AttackResult] = []
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

    ``results``: a mapping of name -> results (e.g. ``AttackOutcome.results``, or a subset of
    it), or a list of AttackResults. Per attack, ``score_<attack>`` is the individual's mean score over the repeats
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

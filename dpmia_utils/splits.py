"""Seeded, disjoint splits of individuals: target/shadow halves, shadow in/out, k-fold CV.

Every split is a pure function of (n or index set, seed, options) and returns sorted integer
index arrays into the prepared dataset, so the same arguments always give the same people.
No individual ever appears on both sides of a member/non-member boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold

from dpmia_utils import seeds

#: Seed-stream tags that give each kind of split its own random stream for one user-facing seed.
_STREAM_TARGET_SHADOW = 0
_STREAM_SHADOW_IN_OUT = 1
_STREAM_FOLDS = 2
_STREAM_MEMBERSHIP = 3


@dataclass(frozen=True)
class TargetShadowSplit:
    """Disjoint index sets: the private target half and the adversary's public shadow half."""

    target: np.ndarray
    shadow: np.ndarray


@dataclass(frozen=True)
class ShadowSplit:
    """The shadow half cut into the shadow model's training records ('in') and held-out ('out')."""

    shadow_in: np.ndarray
    shadow_out: np.ndarray


def _validate_fraction(name: str, value: float) -> None:
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be strictly between 0 and 1, got {value!r}")


def target_shadow_split(
    n: int, seed: int = 0, target_fraction: float = 0.5, labels: np.ndarray | None = None
) -> TargetShadowSplit:
    """Split n individuals into disjoint target and shadow halves (stratified when labels given)."""
    _validate_fraction("target_fraction", target_fraction)
    if n < 2:
        raise ValueError(f"need at least 2 individuals to split, got n={n}")
    rng = seeds.generator(seed, _STREAM_TARGET_SHADOW)
    if labels is None:
        order = rng.permutation(n)
        n_target = int(round(n * target_fraction))
        target, shadow = order[:n_target], order[n_target:]
    else:
        labels = np.asarray(labels)
        if labels.shape != (n,):
            raise ValueError(f"labels must have shape ({n},), got {labels.shape}")
        target_parts, shadow_parts = [], []
        for value in np.unique(labels):
            members = np.flatnonzero(labels == value)
            members = members[rng.permutation(members.size)]
            n_target = int(round(members.size * target_fraction))
            target_parts.append(members[:n_target])
            shadow_parts.append(members[n_target:])
        target, shadow = np.concatenate(target_parts), np.concatenate(shadow_parts)
    if target.size == 0 or shadow.size == 0:
        raise ValueError(f"target_fraction={target_fraction} leaves one side empty for n={n}")
    return TargetShadowSplit(target=np.sort(target), shadow=np.sort(shadow))


def shadow_in_out_split(shadow: np.ndarray, seed: int = 0, in_fraction: float = 0.5) -> ShadowSplit:
    """Cut the shadow half into the shadow model's training set ('in') and the rest ('out').

    The default 50/50 is the authors' ``mia.ShadowModelBundle``: the attack model then learns
    from as many 'in' as 'out' records.
    """
    _validate_fraction("in_fraction", in_fraction)
    shadow = np.asarray(shadow)
    order = shadow[seeds.generator(seed, _STREAM_SHADOW_IN_OUT).permutation(shadow.size)]
    n_in = int(round(shadow.size * in_fraction))
    if n_in == 0 or n_in == shadow.size:
        raise ValueError(
            f"in_fraction={in_fraction} leaves one side empty for {shadow.size} records"
        )
    return ShadowSplit(shadow_in=np.sort(order[:n_in]), shadow_out=np.sort(order[n_in:]))


def kfold_splits(
    indices: np.ndarray, k: int = 5, seed: int = 0, labels: np.ndarray | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """K-fold (train, test) index pairs over `indices`, stratified by `labels[indices]` if given."""
    indices = np.asarray(indices)
    if k < 2 or k > indices.size:
        raise ValueError(
            f"k must be between 2 and the number of individuals ({indices.size}), got {k}"
        )
    random_state = int(seeds.generator(seed, _STREAM_FOLDS).integers(2**31 - 1))
    if labels is None:
        splitter = KFold(n_splits=k, shuffle=True, random_state=random_state)
        pairs = splitter.split(indices)
    else:
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=random_state)
        pairs = splitter.split(indices, np.asarray(labels)[indices])
    return [(np.sort(indices[train]), np.sort(indices[test])) for train, test in pairs]


def balanced_membership_sample(
    members: np.ndarray, non_members: np.ndarray, seed: int = 0, size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Draw equally many members and non-members WITHOUT replacement; disjoint by construction."""
    members, non_members = np.asarray(members), np.asarray(non_members)
    overlap = np.intersect1d(members, non_members)
    if overlap.size:
        raise ValueError(
            f"{overlap.size} individuals are both member and non-member (e.g. index {overlap[0]})"
        )
    largest = min(members.size, non_members.size)
    size = largest if size is None else size
    if not 0 < size <= largest:
        raise ValueError(f"size must be in 1..{largest} (the smaller side), got {size}")
    rng = seeds.generator(seed, _STREAM_MEMBERSHIP)
    return (
        np.sort(rng.choice(members, size=size, replace=False)),
        np.sort(rng.choice(non_members, size=size, replace=False)),
    )

"""Splits are disjoint, cover their population, are seeded, and respect the requested sizes."""

import numpy as np
import pytest

from dpmia_utils.splits import (
    balanced_membership_sample,
    kfold_splits,
    shadow_in_out_split,
    target_shadow_split,
)


@pytest.mark.parametrize("n", [2, 7, 100, 4276])
def test_target_shadow_split_is_a_disjoint_cover(n):
    split = target_shadow_split(n, seed=3)
    assert np.intersect1d(split.target, split.shadow).size == 0
    assert np.array_equal(np.sort(np.concatenate([split.target, split.shadow])), np.arange(n))
    assert abs(split.target.size - n / 2) <= 1


def test_target_shadow_split_is_a_pure_function_of_seed():
    a, b, c = (target_shadow_split(500, seed=s) for s in (1, 1, 2))
    assert np.array_equal(a.target, b.target)
    assert not np.array_equal(a.target, c.target)


def test_stratified_split_keeps_class_balance_on_both_sides():
    labels = np.r_[np.zeros(300, int), np.ones(100, int)]
    split = target_shadow_split(400, seed=0, labels=labels)
    assert labels[split.target].sum() == 50 and labels[split.shadow].sum() == 50
    assert np.intersect1d(split.target, split.shadow).size == 0


@pytest.mark.parametrize("in_fraction", [None, 0.8])
def test_shadow_in_out_is_half_by_default_and_disjoint(in_fraction):
    # Default: the authors' mia bundle, 50% in / 50% out.
    shadow = target_shadow_split(4276, seed=0).shadow
    kwargs = {} if in_fraction is None else {"in_fraction": in_fraction}
    cut = shadow_in_out_split(shadow, seed=5, **kwargs)
    assert np.intersect1d(cut.shadow_in, cut.shadow_out).size == 0
    assert np.array_equal(np.sort(np.r_[cut.shadow_in, cut.shadow_out]), shadow)
    assert cut.shadow_in.size == round((in_fraction or 0.5) * shadow.size)


@pytest.mark.parametrize("stratify", [False, True])
def test_kfold_tests_partition_the_target_and_never_overlap_train(stratify):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 1000)
    target = target_shadow_split(1000, seed=0).target
    folds = kfold_splits(target, k=5, seed=1, labels=labels if stratify else None)
    assert len(folds) == 5
    all_test = np.concatenate([test for _, test in folds])
    assert np.array_equal(np.sort(all_test), target)  # each individual tested exactly once
    for train, test in folds:
        assert np.intersect1d(train, test).size == 0
        assert np.array_equal(np.sort(np.r_[train, test]), target)
    if stratify:
        rates = [labels[test].mean() for _, test in folds]
        assert max(rates) - min(rates) < 0.02


def test_balanced_membership_sample_is_disjoint_equal_and_without_replacement():
    members, non_members = np.arange(0, 300), np.arange(300, 400)
    m, nm = balanced_membership_sample(members, non_members, seed=0)
    assert m.size == nm.size == 100
    assert np.unique(m).size == m.size and np.unique(nm).size == nm.size
    assert set(m) <= set(members) and set(nm) <= set(non_members)


def test_overlapping_membership_sets_are_refused():
    with pytest.raises(ValueError, match="both member and non-member"):
        balanced_membership_sample(np.arange(10), np.arange(5, 20))


@pytest.mark.parametrize(
    "call",
    [
        lambda: target_shadow_split(10, target_fraction=1.0),
        lambda: target_shadow_split(1),
        lambda: shadow_in_out_split(np.arange(3), in_fraction=0.99),
        lambda: kfold_splits(np.arange(3), k=5),
    ],
)
def test_impossible_splits_raise(call):
    with pytest.raises(ValueError):
        call()

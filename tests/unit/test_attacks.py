"""The attacks one at a time: their statistics, evaluation sets, decision rules and scores.

The protocol that runs them over the fold models is tested in test_protocol.py.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from dpmia_utils import attacks, metrics


def synthetic_cross(n: int, p: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """+-1 genotypes, a phenotype driven by 10 variants plus noise, and string sample IDs."""
    rng = np.random.default_rng(seed)
    X = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=(n, p))
    effects = np.zeros(p)
    effects[:10] = 0.5
    y = (X @ effects + rng.normal(0.0, 1.0, n) > 0).astype(int)
    ids = np.array([f"seg_{i:04d}" for i in range(n)])
    return X, y, ids


# --------------------------------------------------------------------------- statistics


def test_lira_statistic_matches_log_odds_of_true_label():
    logits = np.array([-3.0, -0.5, 0.0, 0.7, 4.0, 2.5])
    labels = np.array([0, 1, 1, 0, 1, 0])
    p_one = 1.0 / (1.0 + np.exp(-logits))
    p_true = np.where(labels == 1, p_one, 1.0 - p_one)
    expected = np.log(p_true / (1.0 - p_true))
    np.testing.assert_allclose(attacks.lira_statistic(logits, labels), expected, atol=1e-12)
    # Far beyond where float64 probabilities saturate, the statistic stays exact.
    np.testing.assert_array_equal(
        attacks.lira_statistic(np.array([60.0, 60.0]), np.array([1, 0])), [60.0, -60.0]
    )


def test_true_label_log_likelihood_is_minus_cross_entropy_and_stable():
    logits = np.array([-2.0, -0.3, 0.0, 1.5])
    labels = np.array([1, 0, 1, 0])
    p = 1.0 / (1.0 + np.exp(-logits))
    expected = labels * np.log(p) + (1 - labels) * np.log(1 - p)
    np.testing.assert_allclose(
        attacks.true_label_log_likelihood(logits, labels), expected, atol=1e-12
    )
    # log sigmoid(-800) = -800 to double precision; a probability route gives -inf.
    extreme = attacks.true_label_log_likelihood(np.array([-800.0, 800.0]), np.array([1, 1]))
    np.testing.assert_allclose(extreme, [-800.0, 0.0], atol=1e-12)


def test_attack_features_are_probability_vector_then_label():
    features = attacks.attack_features(np.array([0.2, 0.9]), np.array([1, 0]))
    np.testing.assert_allclose(features, [[0.8, 0.2, 1.0], [0.1, 0.9, 0.0]])


def _normal_logpdf(x: float, mean: float, std: float) -> float:
    return -0.5 * ((x - mean) / std) ** 2 - math.log(std) - 0.5 * math.log(2 * math.pi)


def test_lira_offline_scores_match_hand_computation():
    phi_ref = np.array([[1.0, -2.0], [2.0, -1.0], [0.0, -3.0], [1.5, -2.5]])  # 4 models x 2
    phi_target = np.array([3.0, -2.0])
    scores, fit = attacks.lira_offline_scores(phi_target, phi_ref, fixed_variance=False)
    for j in range(2):
        column = phi_ref[:, j]
        mean, std = column.sum() / 4, math.sqrt(((column - column.sum() / 4) ** 2).sum() / 3)
        tail = 0.5 * math.erfc((phi_target[j] - mean) / (std * math.sqrt(2)))
        assert fit["mu_out"][j] == pytest.approx(mean)
        assert scores[j] == pytest.approx(-math.log(tail), rel=1e-10)
    # Pooled: both columns' squared deviations over (8 observations - 2 means).
    pooled_scores, pooled = attacks.lira_offline_scores(phi_target, phi_ref, fixed_variance=True)
    deviations = phi_ref - phi_ref.mean(axis=0)
    pooled_std = math.sqrt((deviations**2).sum() / 6)
    np.testing.assert_allclose(pooled["sigma_out"], [pooled_std, pooled_std])
    assert pooled_scores[0] > pooled_scores[1]  # far above its OUT mean vs at it


# --------------------------------------------------------------------------- evaluation sets


def test_assert_disjoint_ids_names_the_shared_individual():
    ids = np.array(["a", "b", "c", "b"])  # rows 1 and 3 are the same segregant
    with pytest.raises(ValueError, match="'b'"):
        attacks.assert_disjoint_ids(ids, members=[0, 1], non_members=[2, 3])
    attacks.assert_disjoint_ids(ids, members=[0, 1], non_members=[2])


def test_membership_evaluation_set_is_balanced_and_disjoint():
    members, non_members = np.arange(0, 100), np.arange(100, 130)
    indices, is_member = attacks.membership_evaluation_set(members, non_members, seed=5)
    assert is_member.sum() == (~is_member).sum() == 30
    assert np.unique(indices).size == indices.size == 60
    assert np.isin(indices[is_member], members).all()
    assert np.isin(indices[~is_member], non_members).all()
    with pytest.raises(ValueError):
        attacks.membership_evaluation_set(np.arange(10), np.arange(5, 15), seed=0)


# --------------------------------------------------------------------------- shadow attack


def _weakly_regularised_train_fn(X: np.ndarray, y: np.ndarray, seed: int) -> LogisticRegression:
    """C = 0.01 with p = 200 features on 300 records: overfits, but not to interpolation."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return LogisticRegression(C=0.01, max_iter=500).fit(X, y)


def test_shadow_attack_default_split_is_not_a_constant_guess():
    """A leaky target: the 50/50 default attacks it; the text's 80/20 guesses "in" for all.

    Why the bounds hold: the target's train-minus-test accuracy gap is >= 0.15 (checked first;
    about 0.2 here), and the adversary "member iff correctly classified" has accuracy
    0.5 + gap / 2 (Yeom et al. 2018, 0-1 loss), about 0.6; a depth-2 tree can express that rule
    (split on y, then on p), and with 50/50 training the shadow model has the target's training
    size (300). 0.55 is 0.6 minus 2.5 SE of an accuracy on 600 individuals (SE 0.02); AUC 0.6 is
    6 null SEs above 0.5. With 80/20, a leaf says "out" only where out records outnumber in
    records, i.e. where the in/out likelihood ratio is below 1/4, which this leak never reaches.
    """
    X, y, _ = synthetic_cross(n=1200, p=200, seed=7)
    members, non_members, shadow = np.arange(300), np.arange(300, 600), np.arange(600, 1200)
    target = _weakly_regularised_train_fn(X[members], y[members], 0)
    gap = target.score(X[members], y[members]) - target.score(X[non_members], y[non_members])
    assert gap >= 0.15
    idx, is_member = attacks.membership_evaluation_set(members, non_members, seed=0)
    for seed in range(5):
        args = (target, X[idx], y[idx], is_member, X[shadow], y[shadow])
        new = attacks.shadow_model_attack(*args, train_fn=_weakly_regularised_train_fn, seed=seed)
        assert new.info["in_fraction"] == 0.5 and new.info["shadow_in_size"] == 300
        assert new.predictions.any() and not new.predictions.all()  # both classes
        assert metrics.attack_accuracy(new.predictions, is_member) > 0.55, seed
        assert metrics.roc_auc(new.scores, is_member) > 0.6, seed
        old = attacks.shadow_model_attack(
            *args, train_fn=_weakly_regularised_train_fn, seed=seed, in_fraction=0.8
        )
        # The old failure: every individual called a member, accuracy exactly 0.500, although
        # the forest's scores still rank members higher.
        assert old.predictions.all(), seed
        assert metrics.attack_accuracy(old.predictions, is_member) == 0.5
        assert metrics.roc_auc(old.scores, is_member) > 0.55, seed


# --------------------------------------------------------------------------- loss attack


def test_loss_attack_yeom_rule_uses_given_training_loss():
    X, y, _ = synthetic_cross(n=100, p=10, seed=4)
    weights = np.random.default_rng(3).normal(size=10)

    def model(X: np.ndarray) -> np.ndarray:  # a logits function that never saw the data
        return X @ weights / math.sqrt(10)

    is_member = np.arange(100) < 50
    result = attacks.loss_attack(model, X, y, is_member, train_loss=0.7)
    p = 1.0 / (1.0 + np.exp(-model(X)))
    cross_entropy = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    np.testing.assert_array_equal(result.predictions, cross_entropy < 0.7)
    assert result.summary(n_bootstrap=20)["accuracy"]["source"] == "predictions"
    # Without the training loss there is no fixed rule: accuracy is None, never silently the
    # best threshold on the evaluation labels (which used to be reported as "accuracy").
    optimistic = attacks.loss_attack(model, X, y, is_member)
    assert optimistic.predictions is None
    summary = optimistic.summary(n_bootstrap=20, n_permutations=20)
    assert summary["accuracy"]["value"] is None
    assert summary["advantage"]["value"] is None
    assert summary["empirical_epsilon"]["epsilon_lower_bound"] is None
    assert summary["best_threshold_accuracy"]["optimistic"] is True
    assert summary["best_threshold_accuracy"]["value"] == metrics.best_threshold_accuracy(
        optimistic.scores, is_member
    )
    assert summary["auc"]["value"] == metrics.roc_auc(optimistic.scores, is_member)


# --------------------------------------------------------------------------- LiRA rule


def _simulated_offline_lira(shift: float, n: int, seed: int, k: int = 8):
    """Candidates with their own OUT mean; members' target statistic shifted up by ``shift``."""
    rng = np.random.default_rng(seed)
    centre = rng.normal(0.0, math.sqrt(2.0), 2 * n)
    phi_reference = centre + rng.normal(size=(k, 2 * n))
    is_member = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    phi_target = centre + rng.normal(size=2 * n) + shift * is_member
    scores, fit = attacks.lira_offline_scores(phi_target, phi_reference)
    return phi_target, scores, fit, is_member


def test_lira_offline_rule_at_level_half_is_phi_above_the_out_mean():
    phi, scores, fit, _ = _simulated_offline_lira(0.5, 300, seed=70)
    predictions = attacks.lira_predictions(scores)
    np.testing.assert_array_equal(predictions, phi > fit["mu_out"])
    # A stricter level flags a subset, and is -log(level) on the score.
    strict = attacks.lira_predictions(scores, level=0.05)
    np.testing.assert_array_equal(strict, scores >= -math.log(0.05))
    assert strict.sum() < predictions.sum() and not np.any(strict & ~predictions)
    with pytest.raises(ValueError, match="level"):
        attacks.lira_predictions(scores, level=1.0)


def test_lira_offline_rule_is_chance_without_leakage_and_above_with_it():
    # 1,000 per side: an accuracy's SE is 0.5 / sqrt(2000) = 0.011, a rate's 0.016.
    n, se_rate = 1000, 0.5 / math.sqrt(1000)
    _, scores, _, is_member = _simulated_offline_lira(0.0, n, seed=71)
    guesses = attacks.lira_predictions(scores)
    assert guesses.any() and not guesses.all()
    # phi - mu_out is symmetric about 0 for either side, so TPR = FPR = 1/2: 3 SE each.
    assert abs(guesses[is_member].mean() - 0.5) < 3 * se_rate
    assert abs(guesses[~is_member].mean() - 0.5) < 3 * se_rate
    assert abs(metrics.attack_accuracy(guesses, is_member) - 0.5) < 3 * 0.5 / math.sqrt(2 * n)
    # A member shift of one SD: TPR = Phi(1 / sqrt(1 + 1/8)) = 0.83, FPR 0.5, accuracy 0.66;
    # 0.6 leaves more than 5 SE.
    _, scores, _, is_member = _simulated_offline_lira(1.0, n, seed=72)
    guesses = attacks.lira_predictions(scores)
    expected = 0.5 + 0.5 * (stats.norm.cdf(1 / math.sqrt(1.125)) - 0.5)
    assert expected == pytest.approx(0.663, abs=1e-3)
    assert metrics.attack_accuracy(guesses, is_member) > 0.6


# --------------------------------------------------------------------------- LiRA plan


def test_reference_plan_puts_every_record_in_half_the_models():
    n_pool, k = 500, 8
    plan = attacks.reference_model_plan(n_pool, k, seed=7)
    assert plan.shape == (k, n_pool)
    assert (plan.sum(axis=0) == k // 2).all()
    # Each model's size: sum of n_pool records each in with prob 1/2 -> 4 SD tolerance.
    sizes = plan.sum(axis=1)
    assert np.abs(sizes - n_pool / 2).max() < 4 * math.sqrt(n_pool / 4)
    assert len({row.tobytes() for row in plan}) == k  # different training sets
    with pytest.raises(ValueError):
        attacks.reference_model_plan(500, 1, seed=0)


def test_reference_statistics_train_on_the_plan_and_read_candidates():
    X, y, _ = synthetic_cross(n=60, p=5, seed=8)
    pool, candidates = np.arange(20, 60), np.arange(10)
    plan = attacks.reference_model_plan(pool.size, 4, seed=1)
    trained = []

    def train_fn(X_train, y_train, seed):
        trained.append((X_train.shape[0], seed))
        return lambda X_query: X_query[:, 0] * (seed + 1)  # a model that knows its seed

    phi = attacks.reference_statistics(
        train_fn, X, y, pool, plan, [3, 5, 7, 9], candidates, on_trained=lambda: None
    )
    assert trained == [(int(mask.sum()), s) for mask, s in zip(plan, [3, 5, 7, 9], strict=True)]
    for k, s in enumerate([3, 5, 7, 9]):
        expected = attacks.lira_statistic(X[candidates, 0] * (s + 1), y[candidates])
        np.testing.assert_allclose(phi[k], expected)
    # Through probability-only access, the same statistic up to float rounding.
    black = attacks.reference_statistics(
        train_fn, X, y, pool, plan, [3, 5, 7, 9], candidates, access=attacks.probability_only
    )
    np.testing.assert_allclose(black, phi, rtol=1e-6)
    with pytest.raises(ValueError, match="candidate"):
        attacks.reference_statistics(train_fn, X, y, pool, plan, [3, 5, 7, 9], pool[:3])


def test_lira_attack_scores_the_target_against_the_out_gaussians():
    X, y, _ = synthetic_cross(n=40, p=3, seed=9)
    phi_reference = np.random.default_rng(2).normal(size=(4, 40))
    is_member = np.arange(40) < 20
    result = attacks.lira_attack(
        lambda X: X[:, 0], X, y, is_member, phi_reference, name="lira_black_box"
    )
    phi = attacks.lira_statistic(X[:, 0], y)
    scores, _ = attacks.lira_offline_scores(phi, phi_reference)
    np.testing.assert_array_equal(result.scores, scores)
    np.testing.assert_array_equal(result.predictions, attacks.lira_predictions(scores))
    np.testing.assert_array_equal(result.sample_indices, np.arange(40))
    assert result.name == "lira_black_box" and result.info["n_reference"] == 4


# --------------------------------------------------------------------------- black box


def test_probability_only_access_saturates_like_a_probability_api():
    logits = np.array([-5.0, 0.3, 12.0, 80.0])
    recovered = attacks.probability_only(lambda X: logits)(np.zeros((4, 1)))
    np.testing.assert_allclose(recovered[:3], logits[:3], rtol=1e-6)
    assert recovered[3] < 40.0  # a float64 probability cannot carry a logit of 80


def test_as_logits_fn_reads_a_train_result_and_its_keras_model_alike():
    pytest.importorskip("tensorflow")
    from dpmia_utils.models import ModelSpec, predict_logits
    from dpmia_utils.training import TrainConfig, train_model

    X, y, _ = synthetic_cross(n=60, p=8, seed=6)
    config = TrainConfig(epochs=1, batch_size=20, dp=False, seed=0)
    trained = train_model(X, y, ModelSpec(kind="lasso"), config)
    expected = predict_logits(trained.model, X[:7])
    np.testing.assert_array_equal(attacks.as_logits_fn(trained)(X[:7]), expected)
    np.testing.assert_array_equal(attacks.as_logits_fn(trained.model)(X[:7]), expected)

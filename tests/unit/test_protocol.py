"""The attack protocol (attacks.attack_targets) at stage level, on small synthetic crosses.

The stage objects are the real ones (a data.PreparedTrait, stages.make_splits); the fold
models and the adversary's recipe are cheap scikit-learn models with known behaviour, except
in the one test that runs the whole Keras path. "Memorising": an almost unregularised logistic
regression with more variants than training records (p > n), which interpolates its training
set, so it leaks. "Oblivious": random linear functions of the genotype drawn without looking
at the data, so membership is independent of every score (the null). Null tolerance: 3
standard errors of the AUC when member and non-member scores come from the same
distribution, SE = sqrt((n1 + n0 + 1) / (12 n1 n0)) (Mann-Whitney null variance).
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from dpmia_utils import attacks, metrics, stages
from dpmia_utils.data import PreparedTrait
from dpmia_utils.exposure import per_individual_risk
from dpmia_utils.stages.params import GridError

SPLIT = {"seed": 1, "folds": 2, "target_fraction": 0.5}
ATTACK = {
    "attacks": ["shadow", "loss", "lira"],
    "repeats": 3,
    "reference_models": 8,
    "black_box": False,
    "n_bootstrap": 100,
}


def null_auc_tolerance(n_members: int, n_nonmembers: int, n_se: float = 3.0) -> float:
    """n_se standard errors of the AUC under the null (no membership signal)."""
    return n_se * math.sqrt((n_members + n_nonmembers + 1) / (12.0 * n_members * n_nonmembers))


def synthetic_trait(n: int, p: int, seed: int) -> PreparedTrait:
    """A haploid cross (features +-1), a trait driven by 10 variants plus noise, binarized at 0."""
    rng = np.random.default_rng(seed)
    genotypes = rng.integers(0, 2, size=(n, p), dtype=np.int8)
    effects = np.zeros(p)
    effects[:10] = 0.5
    phenotype = (2.0 * genotypes - 1.0) @ effects + rng.normal(0.0, 1.0, n)
    return PreparedTrait(
        sample_ids=np.array([f"seg_{i:04d}" for i in range(n)]),
        variant_ids=np.array([f"chr01_{j}_A_T" for j in range(p)]),
        genotypes=genotypes,
        phenotype=phenotype,
        labels=(phenotype > 0).astype(np.int8),
        threshold=0.0,
        trait="synthetic",
        ploidy=1,
    )


def memorising_train_fn(X: np.ndarray, y: np.ndarray, seed: int) -> LogisticRegression:
    """C = 1e4: practically no penalty, so with p > n the model interpolates its training set."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return LogisticRegression(C=1e4, max_iter=2000).fit(X, y)


class ObliviousModel:
    """Logits = X @ w / sqrt(p) for w drawn from the seed alone: it never looks at its data."""

    def __init__(self, n_features: int, seed: int) -> None:
        self.weights = np.random.default_rng([seed, 99]).normal(size=n_features)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return X @ self.weights / math.sqrt(self.weights.size)


def oblivious_train_fn(X: np.ndarray, y: np.ndarray, seed: int) -> ObliviousModel:
    return ObliviousModel(X.shape[1], seed)


class RecordingTrainFn:
    """Wraps a train_fn and records, per call, which dataset rows it trained on."""

    def __init__(self, inner, X_full: np.ndarray) -> None:
        self.inner = inner
        # Rows are matched by value, whatever dtype the protocol hands out (int8 genotypes).
        self.row_of = {self._key(row): i for i, row in enumerate(X_full)}
        self.calls: list[np.ndarray] = []

    @staticmethod
    def _key(row: np.ndarray) -> bytes:
        return np.asarray(row, np.float32).tobytes()

    def __call__(self, X: np.ndarray, y: np.ndarray, seed: int):
        self.calls.append(np.array([self.row_of[self._key(row)] for row in X]))
        return self.inner(X, y, seed)


def fold_models(dataset: PreparedTrait, splits, train_fn) -> list:
    X, y = dataset.features(), dataset.labels
    return [train_fn(X[train], y[train], k) for k, (train, _) in enumerate(splits.folds)]


def leaky_setup(seed: int = 3):
    """A memorising target's two fold models, attacked 3 times with 8 reference models."""
    dataset = synthetic_trait(n=240, p=200, seed=1)
    splits = stages.make_splits(dataset, SPLIT)
    models = fold_models(dataset, splits, memorising_train_fn)
    recorder = RecordingTrainFn(memorising_train_fn, dataset.features())
    outcome = attacks.attack_targets(
        dataset, splits, None, models, ATTACK, seed=seed, progress=False, train_fn=recorder
    )
    return {"dataset": dataset, "splits": splits, "outcome": outcome, "recorder": recorder}


@pytest.fixture(scope="module")
def leaky():
    return leaky_setup()


# --------------------------------------------------------------------------- who is attacked


def test_repeat_r_attacks_fold_r_mod_k(leaky):
    for name, results in leaky["outcome"].results.items():
        assert [r.info["target_fold"] for r in results] == [0, 1, 0], name
        assert [r.info["repeat"] for r in results] == [0, 1, 2], name
    assert leaky["outcome"].info["targets"] == "CV fold models (repeat r attacks fold r mod k)"


def test_members_and_non_members_are_the_folds_balanced_and_disjoint(leaky):
    ids, folds = leaky["dataset"].sample_ids, leaky["splits"].folds
    for results in leaky["outcome"].results.values():
        for result in results:
            train, test = folds[result.info["target_fold"]]
            idx = result.sample_indices
            attacks.assert_disjoint_ids(ids, idx[result.is_member], idx[~result.is_member])
            # The membership label is the truth: members are exactly the target fold's records,
            # non-members its held-out records.
            np.testing.assert_array_equal(result.is_member, np.isin(idx, train))
            assert np.isin(idx[~result.is_member], test).all()
            assert result.is_member.sum() == (~result.is_member).sum() == 60
    assert leaky["outcome"].info["evaluation_size"] == [120, 120, 120]


def test_adversary_trains_on_the_shadow_half_only_and_trainings_are_counted(leaky):
    """One shadow model per repeat, then K reference models once; none sees a target record."""
    outcome, recorder, splits = leaky["outcome"], leaky["recorder"], leaky["splits"]
    assert outcome.info["n_model_trainings"] == len(recorder.calls) == 8 + 3 * 1
    assert outcome.info["n_reference"] == 8
    assert outcome.info["adversary_pool_size"] == splits.shadow.size == 120
    for rows in recorder.calls:
        assert np.isin(rows, splits.shadow).all()
    # The reference models come first; each shadow record is IN 4 of the 8.
    in_counts = np.zeros(240, int)
    for rows in recorder.calls[:8]:
        in_counts[rows] += 1
    assert (in_counts[splits.shadow] == 4).all()
    # Each repeat's shadow model trains on half of the shadow half.
    for rows, result in zip(recorder.calls[8:], outcome.results["shadow"], strict=True):
        assert rows.size == result.info["shadow_in_size"] == 60


@pytest.fixture(scope="module")
def leaky_shared(leaky):
    """The leaky setup again, LiRA reusing the shadow models (reference_models: shadow)."""
    recorder = RecordingTrainFn(memorising_train_fn, leaky["dataset"].features())
    outcome = attacks.attack_targets(
        leaky["dataset"],
        leaky["splits"],
        None,
        fold_models(leaky["dataset"], leaky["splits"], memorising_train_fn),
        {**ATTACK, "reference_models": "shadow"},
        seed=3,
        progress=False,
        train_fn=recorder,
    )
    return outcome, recorder


def test_lira_can_reuse_the_shadow_models_as_its_references(leaky, leaky_shared):
    """The shadow attack is unchanged, and LiRA's K references are its 3 models: 3 trainings."""
    outcome, recorder = leaky_shared
    assert outcome.info["n_model_trainings"] == len(recorder.calls) == 3
    assert outcome.info["n_reference"] == 3
    assert outcome.info["lira_references"] == "the shadow models"
    # The same rows, in the same order, as the shadow models of the run with its own references.
    for shared, own in zip(recorder.calls, leaky["recorder"].calls[8:], strict=True):
        np.testing.assert_array_equal(shared, own)
    for ours, theirs in zip(
        outcome.results["shadow"], leaky["outcome"].results["shadow"], strict=True
    ):
        np.testing.assert_array_equal(ours.scores, theirs.scores)
        np.testing.assert_array_equal(ours.predictions, theirs.predictions)
    for name in ("loss",):
        for ours, theirs in zip(outcome.results[name], leaky["outcome"].results[name], strict=True):
            np.testing.assert_array_equal(ours.scores, theirs.scores)
    # LiRA still finds the memorising models' members, with other references than before.
    assert min(outcome.aggregate["lira"]["auc"]["values"]) > 0.7
    assert not np.array_equal(
        outcome.results["lira"][0].scores, leaky["outcome"].results["lira"][0].scores
    )


@pytest.mark.parametrize(
    ("attack", "problem"),
    [
        ({"attacks": ["loss", "lira"], "reference_models": "shadow"}, "must include 'shadow'"),
        ({"repeats": 1, "reference_models": "shadow"}, "repeats be >= 2"),
        ({"reference_models": "shadows"}, "integer >= 2 or 'shadow'"),
        ({"reference_models": 1}, "integer >= 2 or 'shadow'"),
    ],
)
def test_shadow_references_need_shadow_models_to_reuse(attack, problem):
    with pytest.raises(GridError, match=problem):
        stages.resolve_parameters(attack=attack, run={"model": "lasso"})


def test_shadow_half_holding_target_records_is_refused(leaky):
    splits = leaky["splits"]
    overlapping = dataclasses.replace(splits, shadow=np.union1d(splits.shadow, splits.target[:3]))
    with pytest.raises(ValueError, match="shadow half"):
        attacks.attack_targets(
            leaky["dataset"], overlapping, None, [None, None], ATTACK, train_fn=memorising_train_fn
        )


def test_unknown_attack_is_refused(leaky):
    with pytest.raises(ValueError, match="lira_online"):
        attacks.attack_targets(
            leaky["dataset"],
            leaky["splits"],
            None,
            [None, None],
            {**ATTACK, "attacks": ["lira_online"]},
            train_fn=memorising_train_fn,
        )


# --------------------------------------------------------------------------- what it finds


def test_memorising_fold_models_leak(leaky):
    outcome = leaky["outcome"]
    for name in ("shadow", "loss", "lira"):
        values = outcome.aggregate[name]
        assert min(values["auc"]["values"]) > 0.7, name
        assert min(values["accuracy"]["values"]) > 0.6, name
        # The aggregate is the mean of the per-repeat results.
        aucs = [metrics.roc_auc(r.scores, r.is_member) for r in outcome.results[name]]
        assert values["auc"]["mean"] == pytest.approx(np.mean(aucs))
        assert values["auc"]["n"] == 3


def test_fold_models_that_ignore_their_data_are_not_attacked():
    dataset = synthetic_trait(n=1000, p=50, seed=2)
    splits = stages.make_splits(dataset, SPLIT)
    models = [ObliviousModel(50, seed=12345 + k) for k in range(2)]
    outcome = attacks.attack_targets(
        dataset,
        splits,
        None,
        models,
        {**ATTACK, "repeats": 2},
        seed=4,
        progress=False,
        train_fn=oblivious_train_fn,
    )
    for name, results in outcome.results.items():
        for result in results:
            n1, n0 = int(result.is_member.sum()), int((~result.is_member).sum())
            auc = metrics.roc_auc(result.scores, result.is_member)
            assert abs(auc - 0.5) < null_auc_tolerance(n1, n0), (name, auc)


def test_shadow_attack_uses_the_papers_random_forest_on_half_the_shadow_data(leaky):
    for result in leaky["outcome"].results["shadow"]:
        forest = result.artifacts["attack_model"]
        assert isinstance(forest, RandomForestClassifier)
        assert forest.n_estimators == 10 and len(forest.estimators_) == 10
        assert forest.max_depth == 2
        assert max(tree.get_depth() for tree in forest.estimators_) <= 2
        assert forest.n_features_in_ == 3  # [1 - p, p, y]
        # The authors' code (mia's ShadowModelBundle with shadow_dataset_size = n / 2) trains
        # the shadow model on one half of the adversary's data and uses the other, disjoint
        # half as 'out'.
        split = result.artifacts["shadow_split"]
        assert result.info["in_fraction"] == 0.5
        assert abs(split.shadow_in.size - split.shadow_out.size) <= 1
        assert np.intersect1d(split.shadow_in, split.shadow_out).size == 0


def test_lira_results_carry_fixed_rule_predictions(leaky):
    outcome = leaky["outcome"]
    for result, summary in zip(outcome.results["lira"], outcome.summaries["lira"], strict=True):
        np.testing.assert_array_equal(result.predictions, attacks.lira_predictions(result.scores))
        assert result.info["decision_rule"] == attacks.lira_decision_rule()
        assert result.info["n_reference"] == 8
        assert summary["accuracy"]["source"] == "predictions"
        assert summary["empirical_epsilon"]["threshold_selected_on_evaluation_data"] is False
    aggregate = outcome.aggregate["lira"]
    assert {"accuracy", "balanced_accuracy", "auc", "advantage", "empirical_epsilon"} <= set(
        aggregate
    )
    assert {"best_threshold_accuracy", "best_threshold_advantage"} <= set(aggregate)


def test_record_holds_every_attack_with_its_repeats(leaky):
    record = stages.attack_record(leaky["outcome"])
    assert list(record["attacks"]) == ["shadow", "loss", "lira"]
    for entry in record["attacks"].values():
        assert len(entry["repeats"]) == 3
        assert entry["metrics"]["auc"]["values"] == [r["auc"]["value"] for r in entry["repeats"]]
    assert record["info"]["peak_rss_mb"] > 0
    assert "peak_rss_mb" not in leaky["outcome"].info


# --------------------------------------------------------------------------- reproducibility


def test_same_seed_same_numbers_other_seed_other_draws(leaky):
    again = leaky_setup(seed=3)["outcome"]
    for name, results in leaky["outcome"].results.items():
        for first, second in zip(results, again.results[name], strict=True):
            np.testing.assert_array_equal(first.sample_indices, second.sample_indices)
            np.testing.assert_array_equal(first.scores, second.scores)
    assert again.aggregate == leaky["outcome"].aggregate
    other = leaky_setup(seed=4)["outcome"]
    shadow = [r.artifacts["shadow_split"].shadow_in for r in leaky["outcome"].results["shadow"]]
    moved = [r.artifacts["shadow_split"].shadow_in for r in other.results["shadow"]]
    assert any(not np.array_equal(a, b) for a, b in zip(shadow, moved, strict=True))


# --------------------------------------------------------------------------- black box


def test_black_box_adds_shadow_and_lira_with_the_default_recipe(leaky):
    dataset, splits = leaky["dataset"], leaky["splits"]
    X = dataset.features()
    white = RecordingTrainFn(oblivious_train_fn, X)
    black = RecordingTrainFn(oblivious_train_fn, X)
    # Fold models sure of themselves: logits of up to 100 times the memorising model's.
    models = [
        lambda X, model=model: 100.0 * model.decision_function(X)
        for model in fold_models(dataset, splits, memorising_train_fn)
    ]
    outcome = attacks.attack_targets(
        dataset,
        splits,
        None,
        models,
        {**ATTACK, "repeats": 2, "reference_models": 4, "black_box": True},
        progress=False,
        train_fn=white,
        black_box_recipe=black,
    )
    names = ["shadow", "loss", "lira", "shadow_black_box", "lira_black_box"]
    assert list(outcome.results) == names
    assert len(white.calls) == len(black.calls) == 2 + 4
    assert outcome.info["n_model_trainings"] == 12
    for name in ("shadow_black_box", "lira_black_box"):
        assert all(r.info["black_box"] for r in outcome.results[name])
    # The black-box target is read through its probability, where logits far above 36.7
    # saturate; the white-box one through its logits.
    black_lira, white_lira = outcome.results["lira_black_box"][0], outcome.results["lira"][0]
    model = models[black_lira.info["target_fold"]]
    rows = black_lira.sample_indices
    expected = attacks.lira_statistic(
        attacks.probability_only(model)(X[rows]), dataset.labels[rows]
    )
    np.testing.assert_array_equal(black_lira.artifacts["phi_target"], expected)
    assert not np.allclose(black_lira.artifacts["phi_target"], white_lira.artifacts["phi_target"])


# --------------------------------------------------------------------------- individuals


def test_per_individual_risk_of_one_result_is_its_rank(leaky):
    dataset = leaky["dataset"]
    X, ids = dataset.features(), dataset.sample_ids
    lira = leaky["outcome"].results["lira"][0]
    frame = per_individual_risk([lira], ids, X, n_neighbors=3, n_components=4)
    frame = frame.set_index("index").loc[lira.sample_indices]
    # One result: risk is the percentile rank of the LiRA score within the evaluation set.
    expected_rank = (stats.rankdata(lira.scores) - 1) / (lira.scores.size - 1)
    np.testing.assert_allclose(frame["risk"], expected_rank)
    np.testing.assert_array_equal(frame["is_member"], lira.is_member)
    np.testing.assert_array_equal(frame["sample_id"], ids[lira.sample_indices])
    # Brute-force normalised Hamming distance to the 3 nearest others.
    for i in lira.sample_indices[:5]:
        hamming = np.mean(X[i] != X, axis=1)
        hamming[i] = np.inf
        assert frame.loc[i, "knn_distance"] == pytest.approx(np.sort(hamming)[:3].mean())
    # Mahalanobis on 4 PCs from a plain SVD.
    centred = X.astype(np.float64) - X.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    variance = singular[:4] ** 2 / (X.shape[0] - 1)
    scores_pc = centred[lira.sample_indices] @ vt[:4].T
    expected = np.sqrt(((scores_pc**2) / variance).sum(axis=1))
    np.testing.assert_allclose(frame["pca_mahalanobis"], expected, rtol=1e-3)
    rho = frame.attrs["spearman"]["knn_distance/all"]["rho"]
    assert rho == pytest.approx(stats.spearmanr(frame["risk"], frame["knn_distance"])[0])


def test_per_individual_risk_averages_one_fold_over_repeats_and_attacks(leaky):
    outcome, dataset = leaky["outcome"], leaky["dataset"]
    ids, X = dataset.sample_ids, dataset.features()
    # One target model at a time, as notebook 03 does: repeats 0 and 2 attack fold 0.
    first_fold = {
        name: [r for r in results if r.info["target_fold"] == 0]
        for name, results in outcome.results.items()
    }
    frame = per_individual_risk(first_fold, ids, X, n_neighbors=3, n_components=4)
    frame = frame.set_index("index")
    rank_columns = [f"rank_{name}" for name in first_fold]
    np.testing.assert_allclose(frame["risk"], frame[rank_columns].mean(axis=1))
    first, second = first_fold["lira"]
    both = np.intersect1d(first.sample_indices, second.sample_indices)[0]
    by_index = [dict(zip(r.sample_indices, r.scores, strict=True)) for r in (first, second)]
    assert frame.loc[both, "score_lira"] == pytest.approx(
        (by_index[0][both] + by_index[1][both]) / 2
    )
    assert frame.loc[both, "n_evaluations"] == 2
    # Across folds an individual is a member of one model and not of another: refused.
    with pytest.raises(ValueError, match="member in one result"):
        per_individual_risk(outcome.results, ids, X, n_neighbors=3, n_components=4)


# --------------------------------------------------------------------------- the Keras path


def test_dp_keras_fold_models_with_huge_noise_are_not_attacked():
    """The whole stage path with the real trainer: DP-SGD at noise 1e3 leaks nothing."""
    pytest.importorskip("tensorflow")
    dataset = synthetic_trait(n=400, p=40, seed=6)
    splits = stages.make_splits(dataset, SPLIT)
    _, params = stages.resolve_parameters(
        data={"source": "synthetic", "synthetic_samples": 400, "synthetic_variants": 40},
        split={"folds": 2},
        run={"model": "lasso", "dp": True, "noise_multiplier": 1000.0, "epochs": 2},
    )
    cv, plan, selection = stages.train_target(dataset, splits, params)
    record = stages.target_record(cv, plan, dataset, splits, selection)
    assert record["noise_multiplier"] == 1000.0 and record["epsilon"]["rdp"] < 0.01
    attack = {**ATTACK, "repeats": 2, "reference_models": 4}
    outcome = attacks.attack_targets(
        dataset, splits, plan, cv.models, attack, seed=params["seed"], progress=False
    )
    assert outcome.info["n_model_trainings"] == 4 + 2
    for name, results in outcome.results.items():
        for result in results:
            n1, n0 = int(result.is_member.sum()), int((~result.is_member).sum())
            assert n1 == n0 == 100
            auc = metrics.roc_auc(result.scores, result.is_member)
            assert abs(auc - 0.5) < null_auc_tolerance(n1, n0), (name, auc)

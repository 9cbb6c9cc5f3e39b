"""The sceptic's checks (`publish.checks`) find each planted bug, and call its innocent
look-alike fine: a constant-guess attack against a tie of true and false positives, a DP model
above its baseline by far more than noise against one within noise, a DP model at the
majority-class rate, a penalised model without zero weights."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom

from dpmia_utils.jsonio import atomic_write_json
from dpmia_utils.pipeline.store import RECORD_SCHEMA_VERSION, ProfileStore
from dpmia_utils.publish import checks

N = 376  # members and non-members of one attack evaluation


def _repeat(tp: int, fp: int) -> dict:
    tn, fn = N - fp, N - tp
    return {
        "accuracy": {"value": (tp + tn) / (2 * N)},
        "empirical_epsilon": {"tp": tp, "fp": fp, "tn": tn, "fn": fn},
    }


def _store(tmp_path, repeats_by_run: dict[str, list[dict]]) -> ProfileStore:
    store = ProfileStore.for_published("tiny", tmp_path)
    for rid, repeats in repeats_by_run.items():
        store.run_dir(rid).mkdir(parents=True)
        record = {
            "schema_version": RECORD_SCHEMA_VERSION,
            "run_id": rid,
            "profile": "tiny",
            "group": "g",
            "params": {},
            "target": {"test_accuracy_mean": 0.7, "train_accuracy_mean": 0.8, "epsilon": {}},
            "attack": {"attacks": {"shadow": {"metrics": {}, "repeats": repeats}}},
            "notebooks": ["02_target_training.ipynb"],  # not kept, as in a published run
            "provenance": {},
        }
        atomic_write_json(store.run_dir(rid) / "record.json", record)
    return store


def test_tie_probability_is_the_chance_that_true_and_false_positives_are_equal():
    # Independently: for two Binomial(n, 1/2) counts, P(equal) = C(2n, n) / 4^n.
    exact = math.comb(2 * N, N) / 4**N
    assert checks.tie_probability(N, N, 0.5, 0.5) == pytest.approx(exact, rel=1e-9)
    # Far apart rates almost never tie; unequal sides cannot score 0.5 by a tie of counts.
    assert checks.tie_probability(N, N, 0.9, 0.1) < 1e-100
    assert checks.tie_probability(N, N + 1, 0.5, 0.5) == 0.0


def test_a_constant_guess_is_flagged_and_a_tie_is_not(tmp_path):
    tie = _store(tmp_path / "tie", {"a": [_repeat(150, 150), _repeat(200, 180)]})
    found, verdict = checks.exact_half_check(tie, ["a"])
    assert found.startswith("1 of 2 attack repeats score exactly 0.5: 0 predicted one side")
    assert "1 predicted both sides" in found
    expected = sum(
        float(np.sum(binom.pmf(np.arange(N + 1), N, t) * binom.pmf(np.arange(N + 1), N, f)))
        for t, f in ((150 / N, 150 / N), (200 / N, 180 / N))
    )
    assert f"chance gives {expected:.1f} such ties" in found
    assert verdict.startswith("fine")

    constant = _store(tmp_path / "constant", {"a": [_repeat(0, 0)], "b": [_repeat(N, N)]})
    found, verdict = checks.exact_half_check(constant, ["a", "b"])
    assert "2 predicted one side for everyone (a constant guess), 0 predicted both" in found
    assert verdict.startswith("look: a constant guess")


def test_a_run_whose_record_cannot_be_read_is_not_silently_passed(tmp_path):
    store = _store(tmp_path, {"a": [_repeat(200, 180)]})
    found, verdict = checks.exact_half_check(store, ["a", "gone"])
    assert "1 run record(s) could not be read" in found
    assert verdict == "look: not every run could be checked"


def _row(model, l1, dp, accuracy, std=0.01, nonzero=1.0):
    return {
        "run_id": f"{model}{l1}{dp}{accuracy}",
        "status": "complete",
        "model": model,
        "l1": l1,
        "dp": dp,
        "target_test_accuracy_mean": accuracy,
        "target_test_accuracy_std": std,
        "majority_class_rate": 0.5,
        "target_nonzero_fraction_mean": nonzero,
    }


def test_a_dp_model_above_its_baseline_by_more_than_noise_is_flagged():
    within = pd.DataFrame([_row("lasso", 0, False, 0.75), _row("lasso", 0, True, 0.755)])
    found, verdict = checks.dp_above_baseline_check(within, folds=5)
    assert found.startswith("1 of 1 DP points score above their baseline (by at most 0.0050)")
    assert "0 of them by more than 2 standard errors" in found
    assert verdict.startswith("explained")
    # 0.05 above, with a standard error of the difference of 0.01 * sqrt(2 / 5) = 0.0063.
    beyond = pd.DataFrame([_row("lasso", 0, False, 0.75), _row("lasso", 0, True, 0.80)])
    found, verdict = checks.dp_above_baseline_check(beyond, folds=5)
    assert "1 of them by more than 2 standard errors" in found
    assert verdict.startswith("look:")
    below = pd.DataFrame([_row("cnn", 0, False, 0.78), _row("cnn", 0, True, 0.70)])
    assert checks.dp_above_baseline_check(below, folds=5) == (
        "0 of 1 DP points score above their baseline",
        "fine",
    )
    # A DP point whose model and lambda have no baseline is not compared.
    orphan = pd.DataFrame([_row("cnn", 0.001, True, 0.70)])
    assert checks.dp_above_baseline_check(orphan, folds=5)[1] == "not checked"


def test_a_lasso_baseline_stepping_past_the_stability_limit_is_flagged():
    """8 x batch / features: 8 x 16 / 28,220 = 0.0045. A baseline at learning rate 0.01
    steps past it (it may be trained badly, and DP's clipping then looks like a gain); one at
    0.001 does not. Only baselines with a DP point above them are looked at."""
    assert checks.stability_limit(16, 28_220) == pytest.approx(0.004536, abs=1e-6)

    def frame(rate, dp_accuracy=0.755):
        base = {**_row("lasso", 0, False, 0.75), "learning_rate": rate, "batch_size": 16}
        return pd.DataFrame([base, _row("lasso", 0, True, dp_accuracy)])

    found, verdict = checks.dp_above_baseline_check(frame(0.01), folds=5, n_features=28_220)
    assert "learning rate 0.01 at batch 16, above the stability limit 8 x 16 / 28,220" in found
    assert verdict == "look: a baseline steps past the stability limit and may be trained badly"
    found, verdict = checks.dp_above_baseline_check(frame(0.001), folds=5, n_features=28_220)
    assert "learning rate 0.001 at batch 16, within the stability limit" in found
    assert verdict.startswith("explained")
    # No DP point above the baseline: its steps are not the question.
    found, verdict = checks.dp_above_baseline_check(frame(0.01, 0.70), 5, n_features=28_220)
    assert "stability" not in found and verdict == "fine"
    # Without the number of features (no readable record), nothing is said about it.
    assert "stability" not in checks.dp_above_baseline_check(frame(0.01), folds=5)[0]


def test_a_dp_model_at_the_majority_class_rate_is_flagged():
    # 0.51 +- 0.02 over 5 folds: 0.01 above 0.5, within 2 standard errors (0.018).
    stuck = pd.DataFrame([_row("cnn", 0, True, 0.51, std=0.02), _row("cnn", 0, True, 0.70)])
    found, verdict = checks.majority_check(stuck, folds=5)
    assert found.startswith("1 of 2 DP models within 2 standard errors of the majority-class")
    assert "the closest is +0.0100 above it" in found
    assert verdict.startswith("look")
    assert checks.majority_check(stuck.iloc[[1]], folds=5)[1] == "fine"


def test_a_penalised_model_without_zero_weights_is_named():
    frame = pd.DataFrame(
        [
            _row("lasso", 0.001, True, 0.75, nonzero=0.9995),
            _row("lasso", 0.001, False, 0.75, nonzero=0.40),
            _row("lasso", 0.0, False, 0.75, nonzero=1.0),  # lambda 0: not expected sparse
        ]
    )
    found, verdict = checks.sparsity_check(frame)
    assert found.startswith("1 of 2 models with lambda > 0 keep at least 99% of their weights")
    assert "(from 0.40000 to 0.99950)" in found
    assert verdict.startswith("explained")
    assert checks.sparsity_check(frame.iloc[[1, 2]])[1] == "fine"
    # Summaries without the column (older records) are not checked, and say so.
    assert checks.sparsity_check(frame.drop(columns=["target_nonzero_fraction_mean"]))[1] == (
        "not checked"
    )


def test_the_table_has_one_row_per_check(tmp_path):
    store = _store(tmp_path, {"lasso00.75": [_repeat(200, 180)]})
    summary = pd.DataFrame([_row("lasso", 0, False, 0.75)])
    table = checks.sceptic_checks(store, summary, folds=5)
    assert list(table.columns) == list(checks.COLUMNS)
    assert table["check"].tolist() == [
        "an attack at exactly 0.5",
        "a DP model above the same model without DP",
        "a DP model at the majority-class rate",
        "a sparse model without zero weights",
    ]


def test_a_repeat_with_an_empty_side_is_counted_with_its_own_counts(tmp_path):
    # No members were evaluated: no tie probability, and the counts used to classify the
    # repeat are its own, not the previous repeat's.
    empty = {"accuracy": {"value": 0.5}, "empirical_epsilon": {"tp": 0, "fp": 0, "tn": 2, "fn": 0}}
    store = _store(tmp_path, {"a": [_repeat(150, 150), empty]})
    found, verdict = checks.exact_half_check(store, ["a"])
    assert "1 predicted one side for everyone (a constant guess), 1 predicted both" in found
    assert verdict.startswith("look: a constant guess")

"""What the DP CNN's restricted search costs (`publish.search_cost`): each searched point set
beside its fixed twin of the paper grid, fold by fold. Summaries and records are written by
hand, with known differences."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dpmia_utils.publish.search_cost import (
    FIXED_PROFILE,
    SEARCH_PROFILE,
    pending_points_note,
    search_cost_frame,
    search_cost_markdown,
)

FOLDS_FIXED = [0.75, 0.76, 0.74, 0.77, 0.75]
FIXED_MEAN = float(np.mean(FOLDS_FIXED))
GAINS = [0.01, 0.02, 0.00, 0.01, 0.03]


def _row(run_id, noise, lr, clip, accuracy, epochs=50, status="complete"):
    return {
        "run_id": run_id,
        "model": "cnn",
        "l1": 0.0,
        "dp": True,
        "epochs": epochs,
        "batch_size": 16,
        "noise_multiplier": noise,
        "learning_rate": lr,
        "l2_clip": clip,
        "epsilon_rdp_classic": 62.0 if noise == 0.4 else 3.16,
        "target_test_accuracy_mean": accuracy,
        "shadow_accuracy_mean": 0.52,
        "lira_auc_mean": 0.55,
        "status": status,
    }


FIXED = pd.DataFrame(
    [
        _row("f04", 0.4, 0.01, 1.0, float(np.mean(FOLDS_FIXED))),
        _row("f04e100", 0.4, 0.01, 1.0, 0.70, epochs=100),  # another point: never the twin
        _row("f12", 1.2, 0.01, 1.0, 0.74),
    ]
)
SEARCHED_FOLDS = list(np.add(FOLDS_FIXED, GAINS))
SEARCHED = pd.DataFrame(
    [
        _row("s04", 0.4, 0.001, 1.4, float(np.mean(SEARCHED_FOLDS))),
        _row("s12", 1.2, 0.001, 1.4, 0.744),
        _row("s08", 0.8, 0.01, 1.0, 0.0, status="missing"),
    ]
)


def _candidates(scripts_accuracy, selected_folds, scripts_folds):
    return [
        {
            "learning_rate": 0.001,
            "l2_clip": 1.4,
            "mean_test_accuracy": float(np.mean(selected_folds)),
            "fold_test_accuracy": selected_folds,
            "rank": 1,
        },
        {
            "learning_rate": 0.01,
            "l2_clip": 1.0,
            "mean_test_accuracy": scripts_accuracy,
            "fold_test_accuracy": scripts_folds,
            "rank": 2,
        },
    ]


def _records(scripts_accuracy=FIXED_MEAN):
    selection = {
        "searched": ["l2_clip", "learning_rate"],
        "n_candidates": 8,
        "seconds": 1800.0,
        "candidates": _candidates(scripts_accuracy, SEARCHED_FOLDS, FOLDS_FIXED),
    }
    # At noise 1.2 the winner is better on average but worse on fold 0: a selection bias.
    flat = [0.74] * 5
    winner = [0.72, 0.76, 0.75, 0.745, 0.745]
    fixed_params = {"learning_rate": 0.01, "l2_clip": 1.0}
    return {
        (FIXED_PROFILE, "f04"): {
            "params": fixed_params,
            "target": {"fold_test_accuracy": FOLDS_FIXED},
        },
        (FIXED_PROFILE, "f12"): {"params": fixed_params, "target": {"fold_test_accuracy": flat}},
        (SEARCH_PROFILE, "s04"): {
            "target": {"fold_test_accuracy": SEARCHED_FOLDS, "selection": selection}
        },
        (SEARCH_PROFILE, "s12"): {
            "target": {
                "fold_test_accuracy": winner,
                "selection": {**selection, "candidates": _candidates(0.74, winner, flat)},
            }
        },
    }


def test_each_searched_point_is_set_beside_its_fixed_twin_paired_over_the_folds():
    records = _records()
    frame = search_cost_frame(FIXED, SEARCHED, lambda p, r: records[(p, r)])
    assert list(frame["noise"]) == [0.4, 1.2]  # the missing searched run is left out
    first = frame.iloc[0]
    assert first["fixed target accuracy"] == pytest.approx(np.mean(FOLDS_FIXED))
    assert first["difference"] == pytest.approx(np.mean(GAINS))
    assert first["difference se"] == pytest.approx(np.std(GAINS, ddof=1) / math.sqrt(5))
    assert (first["selected learning rate"], first["selected clip"]) == (0.001, 1.4)
    assert first["search minutes"] == 30.0
    second = frame.iloc[1]
    assert second["difference"] == pytest.approx(0.004)
    assert first["selection bias"] == 0.0  # the winner is best on every fold
    assert second["selection bias"] == pytest.approx(0.02 / 5)  # fold 0: 0.74 - 0.72
    text = " ".join(search_cost_markdown(frame).split())  # table cells are padded
    assert (
        "| 0.4 (62.0) | 0.01 / 0.001 | 1 / 1.4 | 0.7540 / 0.7680 | 0.0000 | +0.0140 ± 0.0051 |"
        in text
    )
    assert "scores exactly the fixed run's accuracy" in text


def test_a_search_that_did_not_train_the_fixed_model_is_called_out():
    records = _records(scripts_accuracy=0.7)
    frame = search_cost_frame(FIXED, SEARCHED, lambda p, r: records[(p, r)])
    text = " ".join(search_cost_markdown(frame).split())
    assert "does not score the fixed run's accuracy** at noise 0.4:" in text


def test_a_searched_point_without_a_fixed_twin_keeps_its_own_numbers():
    records = _records()
    frame = search_cost_frame(FIXED.iloc[[1]], SEARCHED, lambda p, r: records[(p, r)])
    assert frame["fixed target accuracy"].isna().all()
    text = " ".join(search_cost_markdown(frame).split())
    assert "| 0.4 (62.0) | - / 0.001 | - / 1.4 | - / 0.7680 | 0.0000 | - |" in text
    assert "scores exactly" not in text
    assert search_cost_markdown(frame.iloc[0:0]) == "No complete run of the searched points yet.\n"


def test_the_points_not_computed_yet_are_named():
    assert pending_points_note(SEARCHED) == (
        "\n2 of the 3 searched points are computed; not yet the one(s) at noise 0.8 "
        "(`python -m dpmia_utils run parameters/paper-cnn-search.yml` computes them).\n"
    )
    assert pending_points_note(SEARCHED.iloc[:2]) == ""

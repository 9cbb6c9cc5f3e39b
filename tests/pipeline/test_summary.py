"""One summary row per run record (`pipeline.summary.flatten_record`)."""

from __future__ import annotations

import math

import pytest

from dpmia_utils.pipeline.summary import ACCOUNTANT_COLUMNS, flatten_record


def _record(dp: bool, noise: float | None, epsilon: dict | None) -> dict:
    return {
        "run_id": "r",
        "group": "g",
        "params": {"model": "lasso", "l1": 0.0, "dp": dp, "noise_multiplier": noise},
        "target": {"noise_multiplier": noise, "epsilon": epsilon, "test_accuracy_mean": 0.7},
        "attack": {"attacks": {}},
        "provenance": {"code_version": "v", "finished": "2026-11-30T20:00:00+00:00"},
    }


# The accountant's epsilon of a DP run without noise is inf; the record's JSON holds null.
NO_NOISE = {"rdp": None, "pld": None, "rdp-classic": None}


@pytest.mark.parametrize(
    "dp,noise,epsilon,expected",
    [
        (False, None, None, math.inf),  # no DP at all
        (True, 0.0, NO_NOISE, math.inf),  # clipping only: not private
        (True, 0.4, {"rdp": 70.6, "pld": 63.5, "rdp-classic": 72.9}, None),
        (True, 0.4, None, math.nan),  # a DP run whose record lacks its epsilon: unknown
    ],
    ids=["no-dp", "dp-without-noise", "dp", "dp-epsilon-missing"],
)
def test_epsilon_columns(dp, noise, epsilon, expected):
    row = flatten_record(_record(dp, noise, epsilon))
    for accountant, column in ACCOUNTANT_COLUMNS.items():
        want = epsilon[accountant] if expected is None else expected
        got = row[column]
        assert (math.isnan(got) and math.isnan(want)) or got == want, (column, got, want)

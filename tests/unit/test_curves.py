"""Curve fits recover known log curves; the turning point matches its closed form."""

import numpy as np
import pandas as pd
import pytest

from dpmia_utils.curves import (
    curve_table_for_display,
    fit_curves,
    fit_log_curve,
    fit_log_curves_by_model,
    kneedle,
    pair_at_equal_privacy,
    turning_point,
)


def _noisy_log_curve(seed, a=0.6, b=0.03, sigma=0.005, n=40):
    rng = np.random.default_rng(seed)
    epsilon = np.exp(rng.uniform(np.log(0.5), np.log(300), n))
    return epsilon, a + b * np.log(epsilon) + rng.normal(0, sigma, n)


def test_fit_recovers_parameters_and_r_squared_matches_definition():
    epsilon, accuracy = _noisy_log_curve(0)
    fit = fit_log_curve(epsilon, accuracy)
    assert fit.intercept == pytest.approx(0.6, abs=0.005)
    assert fit.slope == pytest.approx(0.03, abs=0.002)
    residual = accuracy - (fit.intercept + fit.slope * np.log(epsilon))
    r2 = 1 - np.sum(residual**2) / np.sum((accuracy - accuracy.mean()) ** 2)
    assert fit.r_squared == pytest.approx(r2, rel=1e-10)


def test_slope_confidence_interval_covers_truth_about_95_percent():
    covered = 0
    for seed in range(200):
        fit = fit_log_curve(*_noisy_log_curve(seed, n=12))
        covered += fit.slope_ci[0] <= 0.03 <= fit.slope_ci[1]
    # Binomial(200, 0.95): 3 standard deviations is about +/- 0.046.
    assert 0.90 <= covered / 200 <= 0.995


def test_band_contains_the_fit_and_is_narrowest_near_the_data_centre():
    epsilon, accuracy = _noisy_log_curve(1)
    fit = fit_log_curve(epsilon, accuracy)
    grid = np.geomspace(0.5, 300, 50)
    band = fit.predict(grid)
    assert np.all(band["lower"] <= band["fit"]) and np.all(band["fit"] <= band["upper"])
    width = band["upper"] - band["lower"]
    centre = np.exp(np.mean(np.log(epsilon)))
    assert grid[np.argmin(width)] == pytest.approx(centre, rel=0.2)


def test_fitted_knee_is_the_logarithmic_mean_of_the_range():
    # For y = a + b ln x (b > 0) on [x0, x1], max of y_n - x_n solves 1/(x ln(x1/x0)) = 1/(x1-x0).
    epsilon = np.array([0.5, 1, 2, 5, 10, 20, 50, 100, 200])
    accuracy = 0.55 + 0.04 * np.log(epsilon)
    expected = (200 - 0.5) / np.log(200 / 0.5)
    knee = turning_point(epsilon, accuracy, n_bootstrap=50)
    assert knee.fitted == pytest.approx(expected, rel=0.01)


def test_kneedle_finds_the_corner_of_a_broken_line():
    x = np.linspace(0, 100, 101)
    y = np.minimum(x, 20.0)
    assert kneedle(x, y) == pytest.approx(20.0)


def test_flat_curve_has_no_fitted_knee():
    epsilon = np.array([1.0, 2, 5, 10, 20, 50])
    assert np.isnan(turning_point(epsilon, 0.5 - 0.01 * np.log(epsilon), n_bootstrap=20).fitted)


def test_too_few_points_are_refused():
    with pytest.raises(ValueError, match="at least 3 points"):
        fit_log_curve([1.0, 2.0], [0.5, 0.6])


def test_fit_curves_groups_by_model_and_lambda():
    rows = []
    for model, b in (("lasso", 0.02), ("cnn", 0.04)):
        for eps in (1, 3, 10, 30, 100):
            rows.append(
                dict(model=model, l1=0.0, dp=True, epsilon_rdp=eps, acc=0.6 + b * np.log(eps))
            )
    rows.append(dict(model="lasso", l1=0.0, dp=False, epsilon_rdp=np.inf, acc=0.9))
    table = fit_curves(pd.DataFrame(rows), ("acc",), n_bootstrap=20)
    slopes = dict(zip(table["model"], table["b"], strict=True))
    assert slopes["lasso"] == pytest.approx(0.02) and slopes["cnn"] == pytest.approx(0.04)


def test_flat_response_fits_without_warnings():
    """An attack at exactly chance at every epsilon: slope 0, R^2 and p undefined, no warning."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = fit_log_curve(np.array([1.0, 10.0, 100.0, 1.0]), np.full(4, 0.5))
        band = fit.predict(np.array([1.0, 100.0]))
    assert fit.slope == pytest.approx(0.0, abs=1e-12)
    assert fit.intercept == pytest.approx(0.5)
    assert np.isnan(fit.r_squared)
    assert np.allclose(band["fit"], 0.5)


def _dp_frame():
    """Exact log curves on the classic epsilon, which is twice the modern one."""
    rows = []
    for model, l1, b in (("lasso", 0.0, 0.02), ("lasso", 0.001352, 0.03), ("cnn", 0.0, 0.05)):
        for eps in (1.0, 3.0, 10.0, 30.0):
            rows.append(
                dict(
                    model=model,
                    l1=l1,
                    dp=True,
                    epsilon_rdp=eps / 2,
                    epsilon_rdp_classic=eps,
                    acc=0.6 + b * np.log(eps),
                )
            )
        # No DP: infinite epsilon, far above every curve; must not enter any fit.
        rows.append(
            dict(
                model=model, l1=l1, dp=False, epsilon_rdp=np.inf, epsilon_rdp_classic=np.inf, acc=1
            )
        )
    # A group with two DP points is too small to fit, and a point without a value is skipped.
    rows += [
        dict(model="cnn", l1=0.001352, dp=True, epsilon_rdp=0.5, epsilon_rdp_classic=1.0, acc=0.6),
        dict(model="cnn", l1=0.001352, dp=True, epsilon_rdp=5, epsilon_rdp_classic=10, acc=0.7),
        dict(model="cnn", l1=0.001352, dp=True, epsilon_rdp=15, epsilon_rdp_classic=30, acc=np.nan),
    ]
    return pd.DataFrame(rows)


def test_fit_log_curves_by_model_fits_each_group_on_the_named_accountant():
    fits = fit_log_curves_by_model(_dp_frame(), "acc", "epsilon_rdp_classic")
    assert set(fits) == {("lasso", 0.0), ("lasso", 0.001352), ("cnn", 0.0)}
    assert fits[("lasso", 0.001352)].slope == pytest.approx(0.03)
    assert fits[("cnn", 0.0)].slope == pytest.approx(0.05)
    # The curves are exact in the classic epsilon: intercept 0.6 there, and shifted by
    # b ln 2 on the modern epsilon (half as large), so the column really is the one named.
    assert fits[("lasso", 0.0)].intercept == pytest.approx(0.6)
    on_rdp = fit_log_curves_by_model(_dp_frame(), "acc", "epsilon_rdp")
    assert on_rdp[("lasso", 0.0)].intercept == pytest.approx(0.6 + 0.02 * np.log(2))
    assert fits[("lasso", 0.0)].n == 4  # the no-DP row is not a point of the curve


def test_fit_log_curves_by_model_without_the_column_fits_nothing():
    assert fit_log_curves_by_model(_dp_frame(), "auc", "epsilon_rdp_classic") == {}


def test_curve_table_for_display_keeps_lambda_and_writes_intervals():
    rows = [
        dict(model="lasso", l1=0.001352, dp=True, epsilon_rdp=e, acc=0.6 + 0.02 * np.log(e))
        for e in (1, 3, 10, 30, 100)
    ]
    shown = curve_table_for_display(fit_curves(pd.DataFrame(rows), ("acc",), n_bootstrap=20))
    assert shown["l1"].iloc[0] == 0.001352  # not rounded to 0.0014
    low, high = (float(x) for x in shown["b_ci95"].iloc[0].strip("[]").split(","))
    assert low == pytest.approx(0.02, abs=1e-3) and high == pytest.approx(0.02, abs=1e-3)


def _settings_frame():
    nan = np.nan
    rows = []
    for l1, offset in ((0.0, 0.0), (0.001352, 0.1)):
        # Without DP, CV selected different epochs per lambda: still one pair.
        rows.append(
            dict(
                model="lasso",
                l1=l1,
                dp=False,
                epochs=50 if l1 else 100,
                batch_size=8,
                noise_multiplier=nan,
                target_epsilon=nan,
                acc=0.8 + offset,
            )
        )
        for noise in (0.4, 1.2):
            rows.append(
                dict(
                    model="lasso",
                    l1=l1,
                    dp=True,
                    epochs=50,
                    batch_size=8,
                    noise_multiplier=noise,
                    target_epsilon=nan,
                    acc=noise + offset,
                )
            )
        # A target epsilon: the calibrated noise differs in its last digits; still one pair.
        rows.append(
            dict(
                model="cnn",
                l1=l1,
                dp=True,
                epochs=5,
                batch_size=16,
                noise_multiplier=0.7 + 1e-9 * (l1 > 0),
                target_epsilon=10.0,
                acc=0.7 + offset,
            )
        )
    return pd.DataFrame(rows)


def test_pair_at_equal_privacy_pairs_each_setting_once():
    paired = pair_at_equal_privacy(_settings_frame(), ["acc", "auc_not_measured"])
    assert set(paired.columns.get_level_values(0)) == {"acc"}
    assert len(paired) == 4  # cnn at epsilon 10; lasso at two noises; lasso without DP
    assert not paired.isna().any().any()  # every setting has both lambdas
    acc = paired["acc"]
    assert (acc[0.001352] - acc[0.0]).to_numpy() == pytest.approx([0.1] * 4)
    rows = {tuple(index): row for index, row in acc.iterrows()}
    assert rows[("lasso", "DP", 50, 8, 1.2, "-")][0.0] == pytest.approx(1.2)
    assert rows[("lasso", "no DP", "-", "-", "-", "-")][0.0] == pytest.approx(0.8)
    assert rows[("cnn", "DP", 5, 16, "-", 10.0)][0.001352] == pytest.approx(0.8)


def test_pair_at_equal_privacy_keeps_an_unpaired_setting_as_a_gap():
    frame = _settings_frame()
    frame = frame.drop(frame[(frame["l1"] > 0) & (frame["noise_multiplier"] == 0.4)].index)
    acc = pair_at_equal_privacy(frame, ["acc"])["acc"]
    gap = acc.xs(0.4, level="noise_multiplier")
    assert gap[0.0].iloc[0] == pytest.approx(0.4) and np.isnan(gap[0.001352].iloc[0])

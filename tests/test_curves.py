"""Curve fits recover known log curves; the turning point matches its closed form."""

import numpy as np
import pandas as pd
import pytest

from dpmia_utils.curves import fit_curves, fit_log_curve, kneedle, turning_point


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

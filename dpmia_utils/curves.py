"""Privacy/utility curves: fit accuracy = a + b ln(epsilon) and locate the turning point.

The paper fitted log curves to target and attack accuracy against epsilon and chose
epsilon = 10 by eye as the point where utility stops improving. We fit the same model with
statsmodels (OLS, 95% confidence bands, R^2) and locate the turning point with Kneedle
(Satopaa et al. 2011): normalise both axes to [0, 1] and take the point where the normalised
curve lies furthest above the diagonal, i.e. the maximum of y_n - x_n, which approximates the
point of maximum curvature.

Note what the normalisation implies for a pure log curve: y_n = ln(x/x0) / ln(x1/x0) does not
depend on a or b (for b > 0), so the knee of the fitted curve is (x1 - x0) / ln(x1 / x0), the
logarithmic mean of the epsilon range studied. `turning_point` therefore also reports the knee
of the observed points, whose bootstrap interval reflects the data rather than the range.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm

from dpmia_utils import seeds

#: The accountant the paper's figures used: RDP with the classic conversion over the
#: tensorflow-privacy tutorial orders. It reproduces the paper's published epsilons.
PAPER_ACCOUNTANT = "epsilon_rdp_classic"

#: The settings that fix a DP training's privacy, in the order tables show them.
PRIVACY_SETTINGS = ("epochs", "batch_size", "noise_multiplier", "target_epsilon")


@dataclass(frozen=True)
class LogFit:
    """An OLS fit of y = a + b ln(epsilon)."""

    intercept: float
    slope: float
    intercept_ci: tuple[float, float]
    slope_ci: tuple[float, float]
    r_squared: float
    n: int
    slope_p_value: float
    epsilon_range: tuple[float, float]
    _result: object  # statsmodels RegressionResults, for prediction bands

    def predict(self, epsilon: np.ndarray, alpha: float = 0.05) -> pd.DataFrame:
        """Fitted mean and its (1 - alpha) confidence band at the given epsilons."""
        epsilon = np.asarray(epsilon, dtype=float)
        design = sm.add_constant(np.log(epsilon), has_constant="add")
        frame = self._result.get_prediction(design).summary_frame(alpha=alpha)
        return pd.DataFrame(
            {
                "epsilon": epsilon,
                "fit": frame["mean"].to_numpy(),
                "lower": frame["mean_ci_lower"].to_numpy(),
                "upper": frame["mean_ci_upper"].to_numpy(),
            }
        )

    def as_dict(self) -> dict:
        """JSON-friendly summary of the fit."""
        return {
            "a": self.intercept,
            "b": self.slope,
            "a_ci95": list(self.intercept_ci),
            "b_ci95": list(self.slope_ci),
            "r_squared": self.r_squared,
            "n": self.n,
            "b_p_value": self.slope_p_value,
        }


def _finite_points(epsilon: np.ndarray, accuracy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The points a log curve can describe: finite accuracy at a finite, positive epsilon."""
    epsilon = np.asarray(epsilon, dtype=float)
    accuracy = np.asarray(accuracy, dtype=float)
    keep = np.isfinite(epsilon) & (epsilon > 0) & np.isfinite(accuracy)
    return epsilon[keep], accuracy[keep]


def fit_log_curve(epsilon: np.ndarray, accuracy: np.ndarray) -> LogFit:
    """Fit accuracy = a + b ln(epsilon) by OLS; needs at least 3 points with finite epsilon."""
    epsilon, accuracy = _finite_points(epsilon, accuracy)
    if epsilon.size < 3 or np.unique(epsilon).size < 2:
        raise ValueError(
            f"need at least 3 points at 2 or more distinct finite epsilons, got {epsilon.size}"
        )
    # A flat response (an attack at exactly 0.5 at every epsilon) is a valid fit: slope 0,
    # zero residuals. R^2 and the slope's p-value are then 0/0: NaN, without a warning.
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        result = sm.OLS(accuracy, sm.add_constant(np.log(epsilon))).fit()
        ci = result.conf_int(alpha=0.05)
        flat = np.ptp(accuracy) == 0
        r_squared = float("nan") if flat else float(result.rsquared)
        p_values = np.full(2, np.nan) if flat else result.pvalues
    return LogFit(
        intercept=float(result.params[0]),
        slope=float(result.params[1]),
        intercept_ci=(float(ci[0][0]), float(ci[0][1])),
        slope_ci=(float(ci[1][0]), float(ci[1][1])),
        r_squared=r_squared,
        n=int(epsilon.size),
        slope_p_value=float(p_values[1]),
        epsilon_range=(float(epsilon.min()), float(epsilon.max())),
        _result=result,
    )


def kneedle(x: np.ndarray, y: np.ndarray) -> float:
    """Kneedle knee of an increasing, concave curve: argmax of normalised y - x (x sorted)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    order = np.argsort(x)
    x, y = x[order], y[order]
    if x[-1] == x[0] or y.max() == y.min():
        return float("nan")
    x_n = (x - x[0]) / (x[-1] - x[0])
    y_n = (y - y.min()) / (y.max() - y.min())
    return float(x[np.argmax(y_n - x_n)])


@dataclass(frozen=True)
class TurningPoint:
    """The Kneedle turning point of the fitted curve and of the points, with bootstrap CIs."""

    fitted: float
    fitted_ci95: tuple[float, float]
    observed: float
    observed_ci95: tuple[float, float]
    n_bootstrap: int


def _fitted_knee(epsilon: np.ndarray, accuracy: np.ndarray, grid_size: int = 2000) -> float:
    fit = fit_log_curve(epsilon, accuracy)
    if fit.slope <= 0:
        return float("nan")  # a flat or falling curve has no utility knee
    lo, hi = fit.epsilon_range
    grid = np.linspace(lo, hi, grid_size)
    return kneedle(grid, fit.intercept + fit.slope * np.log(grid))


def _observed_knee(epsilon: np.ndarray, accuracy: np.ndarray) -> float:
    frame = pd.DataFrame({"e": epsilon, "a": accuracy}).groupby("e")["a"].mean()
    if frame.size < 3:
        return float("nan")
    return kneedle(frame.index.to_numpy(), frame.to_numpy())


def turning_point(
    epsilon: np.ndarray, accuracy: np.ndarray, n_bootstrap: int = 1000, seed: int = 0
) -> TurningPoint:
    """Kneedle turning point of accuracy vs epsilon with percentile bootstrap intervals."""
    epsilon, accuracy = _finite_points(epsilon, accuracy)
    rng = seeds.generator(seed)
    fitted_boot, observed_boot = [], []
    for _ in range(n_bootstrap):
        pick = rng.integers(0, epsilon.size, epsilon.size)
        if np.unique(epsilon[pick]).size < 2:
            continue
        fitted_boot.append(_fitted_knee(epsilon[pick], accuracy[pick]))
        observed_boot.append(_observed_knee(epsilon[pick], accuracy[pick]))

    def interval(values: list[float]) -> tuple[float, float]:
        values = np.asarray(values, dtype=float)
        values = values[np.isfinite(values)]
        if values.size < 0.5 * n_bootstrap:
            return (float("nan"), float("nan"))
        return (float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5)))

    return TurningPoint(
        fitted=_fitted_knee(epsilon, accuracy),
        fitted_ci95=interval(fitted_boot),
        observed=_observed_knee(epsilon, accuracy),
        observed_ci95=interval(observed_boot),
        n_bootstrap=n_bootstrap,
    )


def _dp_runs(summary: pd.DataFrame, epsilon_column: str) -> pd.DataFrame:
    """The runs a privacy/utility curve is fitted on: DP runs with a finite, positive epsilon."""
    epsilon = pd.to_numeric(summary[epsilon_column], errors="coerce")
    return summary[summary["dp"].astype(bool) & np.isfinite(epsilon) & (epsilon > 0)]


def _fit_or_none(group: pd.DataFrame, column: str, epsilon_column: str) -> LogFit | None:
    """The log fit of one group's `column`, or None where too few points can be fitted."""
    data = group[[epsilon_column, column]].dropna()
    try:
        return fit_log_curve(data[epsilon_column], data[column])
    except ValueError:
        return None


def fit_curves(
    summary: pd.DataFrame,
    metrics: tuple[str, ...],
    epsilon_column: str = "epsilon_rdp",
    by: tuple[str, ...] = ("model", "l1"),
    n_bootstrap: int = 500,
) -> pd.DataFrame:
    """Fit a log curve per (model, l1) group and metric over the DP runs of a summary table.

    The rows and the fitting rule are those of :func:`fit_log_curves_by_model`; each fit also
    gets its turning point (:func:`turning_point`).
    """
    rows = []
    for keys, group in _dp_runs(summary, epsilon_column).groupby(list(by)):
        for metric in metrics:
            fit = _fit_or_none(group, metric, epsilon_column) if metric in group else None
            if fit is None:
                continue
            data = group[[epsilon_column, metric]].dropna()
            knee = turning_point(data[epsilon_column], data[metric], n_bootstrap=n_bootstrap)
            rows.append(
                {
                    **dict(zip(by, keys if isinstance(keys, tuple) else (keys,), strict=True)),
                    "metric": metric,
                    **fit.as_dict(),
                    "knee_fitted": knee.fitted,
                    "knee_fitted_ci95": list(knee.fitted_ci95),
                    "knee_observed": knee.observed,
                    "knee_observed_ci95": list(knee.observed_ci95),
                }
            )
    return pd.DataFrame(rows)


def fit_log_curves_by_model(
    dp_frame: pd.DataFrame, column: str, epsilon_column: str
) -> dict[tuple[str, float], LogFit]:
    """Log fit of `column` against `epsilon_column` per (model, l1) group of the DP runs.

    Rows without DP, with a non-finite epsilon or a missing value are left out; so is a group
    with too few points to fit (fewer than 3, or fewer than 2 distinct epsilons).
    """
    if column not in dp_frame or epsilon_column not in dp_frame:
        return {}
    fits = {}
    for (model, l1), group in _dp_runs(dp_frame, epsilon_column).groupby(["model", "l1"]):
        fit = _fit_or_none(group, column, epsilon_column)
        if fit is not None:
            fits[(str(model), float(l1))] = fit
    return fits


def pair_at_equal_privacy(
    summary: pd.DataFrame, value_columns: list[str], missing: str = "-"
) -> pd.DataFrame:
    """Each lambda's values side by side, one row per model and privacy setting.

    A setting is what the run asked for: without DP, nothing (all no-DP runs of a model pair
    up, whatever epochs or batch their selection chose); with a target epsilon, that epsilon
    with epochs and batch (the noise is derived from it); otherwise epochs, batch and noise.
    Settings that do not apply show as `missing`. Columns are (value, lambda); runs that share
    a setting and a lambda (e.g. seeds) are averaged; value columns the summary lacks (an
    attack the profile did not run) are left out.
    """
    settings = [c for c in PRIVACY_SETTINGS if c in summary]
    value_columns = [c for c in value_columns if c in summary]
    frame = summary.copy()
    frame[settings] = frame[settings].apply(pd.to_numeric, errors="coerce")
    dp = frame["dp"].astype(bool)
    frame.loc[~dp, settings] = np.nan
    if "target_epsilon" in frame and "noise_multiplier" in frame:
        frame.loc[frame["target_epsilon"].notna(), "noise_multiplier"] = np.nan
    frame["privacy"] = np.where(dp, "DP", "no DP")
    keys = ["model", "privacy", *settings]
    paired = frame.groupby([*keys, "l1"], dropna=False)[value_columns].mean().unstack("l1")
    index = paired.index.to_frame(index=False)
    for column in settings:
        counts = column in ("epochs", "batch_size")
        index[column] = [
            missing if pd.isna(v) else int(v) if counts else float(v) for v in index[column]
        ]
    paired.index = pd.MultiIndex.from_frame(index)
    return paired


def curve_table_for_display(table: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """The `fit_curves` table with its 95% intervals written as '[low, high]' (`digits` sig.)."""
    shown = table.copy()
    for column in [c for c in shown if c.endswith("_ci95")]:
        shown[column] = shown[column].map(lambda ci: f"[{ci[0]:.{digits}g}, {ci[1]:.{digits}g}]")
    return shown

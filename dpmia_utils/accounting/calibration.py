"""Noise from a privacy budget: the smallest noise multiplier whose epsilon meets a target.

A run that asks for a target epsilon instead of a noise multiplier gets its noise here, by a
search over :func:`.accountants.compute_epsilon`; the search guarantees the target is met, so
the run's reported epsilon never exceeds what was asked for.
"""

from __future__ import annotations

import math

from .accountants import compute_epsilon

#: Default relative tolerance of :func:`calibrate_noise`: the returned noise is at most
#: ``(1 + CALIBRATION_RTOL)`` times the smallest noise that meets the target.
CALIBRATION_RTOL: float = 1e-3

# Bounds of the noise search: no DP-SGD run uses noise outside them.
_MIN_NOISE = 1e-4
_MAX_NOISE = 1e4


def calibrate_noise(
    target_epsilon: float,
    n: int,
    batch_size: int,
    epochs: float,
    delta: float | None = None,
    accountant: str = "rdp",
    sampling: str = "poisson",
    rtol: float = CALIBRATION_RTOL,
) -> float:
    """Smallest noise multiplier (to relative tolerance rtol) whose epsilon is <= target_epsilon.

    Brackets the answer by doubling or halving from 1, then shrinks the bracket, always keeping
    epsilon(low) > target >= epsilon(high), until high - low <= rtol * high, and returns high. So
    ``compute_epsilon(..., calibrate_noise(...)) <= target_epsilon`` holds by construction, and
    the smallest noise meeting the target, sigma*, satisfies ``high * (1 - rtol) <= sigma* <= high``
    whenever epsilon decreases with noise (it does for the RDP accountants).
    """
    if not (math.isfinite(target_epsilon) and target_epsilon > 0):
        raise ValueError(f"target_epsilon must be a positive finite number, got {target_epsilon!r}")
    if not 0 < rtol < 1:
        raise ValueError(f"rtol must lie in (0, 1), got {rtol!r}")

    def epsilon_at(noise: float) -> float:
        return compute_epsilon(n, batch_size, epochs, noise, delta, accountant, sampling)

    low, high = 1.0, 1.0
    eps_low = eps_high = epsilon_at(1.0)  # also rejects invalid n, batch, epochs, delta, ...
    if eps_high <= target_epsilon:
        while eps_low <= target_epsilon:
            high, eps_high = low, eps_low
            low = low / 2
            if low < _MIN_NOISE:
                raise ValueError(
                    f"target_epsilon={target_epsilon} is met with noise < {_MIN_NOISE}"
                )
            eps_low = epsilon_at(low)
    else:
        while eps_high > target_epsilon:
            low, eps_low = high, eps_high
            high = high * 2
            if high > _MAX_NOISE:
                raise ValueError(f"target_epsilon={target_epsilon} needs noise > {_MAX_NOISE}")
            eps_high = epsilon_at(high)

    while high - low > rtol * high:
        width = high - low
        # log(epsilon) is nearly linear in log(noise), so interpolate there and probe just either
        # side of the estimate: a good estimate closes the bracket in two evaluations.
        probes = [(low + high) / 2]
        if math.isfinite(eps_low) and eps_high > 0:
            fraction = math.log(eps_low / target_epsilon) / math.log(eps_low / eps_high)
            estimate = math.exp(math.log(low) + fraction * math.log(high / low))
            step = rtol * estimate / 3
            probes = [estimate - step, estimate + step]
        for probe in probes:
            if not low < probe < high:
                continue
            eps_probe = epsilon_at(probe)
            if eps_probe <= target_epsilon:
                high, eps_high = probe, eps_probe
            else:
                low, eps_low = probe, eps_probe
        if high - low > width / 2 and high - low > rtol * high:
            # The interpolation did not pay off: fall back on one bisection step.
            middle = (low + high) / 2
            eps_middle = epsilon_at(middle)
            if eps_middle <= target_epsilon:
                high, eps_high = middle, eps_middle
            else:
                low, eps_low = middle, eps_middle
    return high

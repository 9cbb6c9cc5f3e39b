"""The paper's accountant, ``"rdp-classic"``: its RDP orders and the classic conversion.

The paper computed its epsilons as the tensorflow-privacy tutorials did: the RDP of the
Poisson-subsampled Gaussian at a short list of orders (:data:`CLASSIC_RDP_ORDERS`), turned into
(epsilon, delta) with ``min_a RDP(a) + log(1/delta)/(a-1)`` (Mironov 2017, Prop. 3). Kept apart
so the reproduction of the paper's table is one small, readable piece; the accountants that a
new study should quote (:mod:`.accountants`) are tighter.
"""

from __future__ import annotations

import math

import numpy as np

#: The orders the paper's published epsilons were computed with: the tensorflow-privacy
#: tutorials' ``compute_epsilon`` (1.1 to 10.9 by 0.1, then 12 to 63). With the classic conversion,
#: Poisson q = b/n, steps = ceil(epochs * n / b), n = 1504 and delta = 0.00066489 they reproduce
#: the paper's epsilon table to better than 1e-6 relative (tests pin four of its rows). An older
#: list (1.25, 1.5, ..., 63, 128, 256, 512, from ``compute_dp_sgd_privacy``) gave up to 6% more.
CLASSIC_RDP_ORDERS: tuple[float, ...] = tuple(
    [1.0 + x / 10.0 for x in range(1, 100)] + [float(a) for a in range(12, 64)]
)

# The orders of tensorflow-privacy's compute_dp_sgd_privacy (2019 to 0.9.0), not the paper's.
_COMPUTE_DP_SGD_PRIVACY_ORDERS: tuple[float, ...] = tuple(
    [1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 3.0, 3.5, 4.0, 4.5]
    + [float(a) for a in range(5, 64)]
    + [128.0, 256.0, 512.0]
)


def _as_curve(
    orders: tuple[float, ...] | list[float] | np.ndarray, rdp: list[float] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Orders and RDP values as float arrays, checked for the classic conversion."""
    orders_array = np.asarray(orders, dtype=float)
    rdp_array = np.asarray(rdp, dtype=float)
    if orders_array.shape != rdp_array.shape:
        raise ValueError("orders and rdp must have the same length")
    if np.any(orders_array <= 1):
        raise ValueError("the classic conversion needs every order > 1")
    return orders_array, rdp_array


def classic_rdp_to_epsilon(
    orders: tuple[float, ...] | list[float] | np.ndarray,
    rdp: list[float] | np.ndarray,
    delta: float,
) -> tuple[float, float]:
    """Classic RDP-to-DP conversion: (min_a rdp(a) + log(1/delta)/(a-1), argmin order)."""
    orders_array, rdp_array = _as_curve(orders, rdp)
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta must lie in (0, 1), got {delta!r}")
    epsilons = rdp_array + math.log(1.0 / delta) / (orders_array - 1.0)
    if np.all(np.isinf(epsilons)):
        return math.inf, float(orders_array[0])
    best = int(np.nanargmin(epsilons))
    return float(epsilons[best]), float(orders_array[best])


def classic_rdp_to_delta(
    orders: tuple[float, ...] | list[float] | np.ndarray,
    rdp: list[float] | np.ndarray,
    epsilon: float,
) -> float:
    """Inverse of the classic conversion: delta = min(1, min_a exp((a - 1) * (rdp(a) - epsilon)))."""
    orders_array, rdp_array = _as_curve(orders, rdp)
    log_deltas = (orders_array - 1.0) * (rdp_array - epsilon)
    # exp(min(0, x)) is min(1, exp(x)) without overflowing when every order gives delta >= 1.
    return float(math.exp(min(0.0, float(np.min(log_deltas)))))

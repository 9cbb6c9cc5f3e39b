"""Privacy accounting for DP-SGD: epsilon from training settings, noise from a target epsilon.

Three accountants, all built on Google's ``dp_accounting`` (0.4.3):

``"rdp"``
    Renyi DP over a dense list of orders (:data:`RDP_ORDERS`), converted to (epsilon, delta) with
    dp_accounting's improved conversion (Canonne, Kamath, Steinke 2020; Asoodeh et al. 2020).
``"pld"``
    Privacy loss distributions (Koskela et al.; Meiser and Mohammadi), pessimistic discretization
    with :data:`PLD_VALUE_DISCRETIZATION_INTERVAL`. The tightest of the three.
``"rdp-classic"``
    The paper's accountant: the RDP of the Poisson-subsampled Gaussian at the tensorflow-privacy
    tutorials' orders (:data:`CLASSIC_RDP_ORDERS`) and the classic conversion
    ``min_a RDP(a) + log(1/delta)/(a-1)`` (Mironov 2017, Prop. 3). It reproduces the paper's
    published epsilons; use it to compare with them.

Sampling schemes (``sampling=``):

``"poisson"``
    Each example joins each batch independently with probability q = batch_size / n;
    add-or-remove-one neighbours (the DP-SGD analysis everyone quotes).
``"fixed"``
    Each step draws a batch of exactly ``batch_size`` distinct examples uniformly at random
    (without replacement *within* the step, independently across steps); replace-one neighbours,
    so its epsilon is not directly comparable with the Poisson one. Only the RDP accountants support
    it, through the bound of Wang, Balle and Kasiviswanathan (2019), which is loose: expect
    epsilons several times the Poisson ones, and astronomically larger below noise ~0.8.
    Shuffling once per epoch and cutting the permutation into batches is a *different* scheme
    that none of these accountants describe.

``noise_multiplier`` is the noise standard deviation divided by the per-example clipping norm.
With microbatches of more than one example, one example can move its microbatch's clipped
gradient by twice the norm: pass half the optimizer's noise multiplier (tensorflow-privacy 0.9.0
does the same with ``used_microbatching=True``). Steps are ``ceil(epochs * n / batch_size)``, as
tensorflow-privacy counts them, unless the caller passes ``steps``: a trained model's epsilon
must count the steps its training really took (see :func:`training_accounting`). Delta defaults
to ``1 / n``. Every epsilon covers the sequence of all
intermediate models (adaptive composition), not just the final one.
"""

from __future__ import annotations

import functools
import math
from importlib import metadata
from typing import Any

import numpy as np
from dp_accounting import dp_event
from dp_accounting.pld import pld_privacy_accountant
from dp_accounting.privacy_accountant import NeighboringRelation
from dp_accounting.rdp import rdp_privacy_accountant

ACCOUNTANTS: tuple[str, ...] = ("rdp", "pld", "rdp-classic")
SAMPLINGS: tuple[str, ...] = ("poisson", "fixed")

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

#: Orders for ``"rdp"``: dp_accounting's defaults (1.1 to 10.9 by 0.1, 11 to 63, 128 to 1024),
#: every 4th integer from 64 to 124, a few more large orders, all of :data:`CLASSIC_RDP_ORDERS`
#: (so ``"rdp"`` is never above ``"rdp-classic"``) and tensorflow-privacy's own list (so it is
#: never above ``compute_dp_sgd_privacy``). Orders below 1.1 would only tighten epsilons in the
#: hundreds and are the slowest to evaluate, so none are added.
RDP_ORDERS: tuple[float, ...] = tuple(
    sorted(
        set(map(float, rdp_privacy_accountant.DEFAULT_RDP_ORDERS))
        | set(map(float, range(64, 128, 4)))
        | {160.0, 192.0, 384.0, 768.0}
        | set(CLASSIC_RDP_ORDERS)
        | set(_COMPUTE_DP_SGD_PRIVACY_ORDERS)
    )
)

#: PLD grid step. 1e-3 agrees with 1e-4 to < 0.01 in epsilon on the paper's 20 settings (at most
#: 0.3 % relative) while being about 10x faster (< 1 s per call vs up to 8 s); the pessimistic
#: discretization keeps it an upper bound either way.
PLD_VALUE_DISCRETIZATION_INTERVAL: float = 1e-3

#: Default relative tolerance of :func:`calibrate_noise`: the returned noise is at most
#: ``(1 + CALIBRATION_RTOL)`` times the smallest noise that meets the target.
CALIBRATION_RTOL: float = 1e-3

# Bounds of the noise search in calibrate_noise: no DP-SGD run uses noise outside them.
_MIN_NOISE = 1e-4
_MAX_NOISE = 1e4


def sampling_probability(n: int, batch_size: int) -> float:
    """The per-step sampling rate q = batch_size / n."""
    return batch_size / n


def training_steps(n: int, batch_size: int, epochs: float) -> int:
    """Number of DP-SGD steps, ceil(epochs * n / batch_size), as tensorflow-privacy counts them."""
    return int(math.ceil(epochs * n / batch_size))


def _resolve_steps(n: int, batch_size: int, epochs: float, steps: int | None) -> int:
    """The steps to account: the ones given (a training's real count) or tf-privacy's formula."""
    if steps is None:
        return training_steps(n, batch_size, epochs)
    if isinstance(steps, bool) or int(steps) != steps or steps <= 0:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    return int(steps)


def _check_inputs(
    n: int,
    batch_size: int,
    epochs: float,
    noise_multiplier: float,
    delta: float | None,
    accountant: str,
    sampling: str,
) -> float:
    """Raise ValueError on any invalid accounting input; return the effective delta."""
    if accountant not in ACCOUNTANTS:
        raise ValueError(f"unknown accountant {accountant!r}; expected one of {ACCOUNTANTS}")
    if sampling not in SAMPLINGS:
        raise ValueError(f"unknown sampling {sampling!r}; expected one of {SAMPLINGS}")
    if isinstance(n, bool) or int(n) != n or n <= 0:
        raise ValueError(f"n (training-set size) must be a positive integer, got {n!r}")
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if batch_size > n:
        raise ValueError(f"batch_size ({batch_size}) cannot exceed n ({n})")
    if not (math.isfinite(epochs) and epochs > 0):
        raise ValueError(f"epochs must be a positive finite number, got {epochs!r}")
    if math.isnan(noise_multiplier) or noise_multiplier < 0:
        raise ValueError(f"noise_multiplier must be >= 0, got {noise_multiplier!r}")
    effective_delta = 1.0 / n if delta is None else float(delta)
    if not 0.0 < effective_delta < 1.0:
        raise ValueError(f"delta must lie in (0, 1), got {delta!r}")
    if accountant == "pld" and sampling == "fixed":
        raise ValueError(
            "the PLD accountant of dp_accounting 0.4.3 does not support fixed-size sampling "
            "without replacement (SampledWithoutReplacementDpEvent); use 'rdp' or 'rdp-classic'"
        )
    return effective_delta


def _neighboring_relation(sampling: str) -> NeighboringRelation:
    """The adjacency under which the sampling scheme's amplification theorem holds."""
    if sampling == "poisson":
        return NeighboringRelation.ADD_OR_REMOVE_ONE
    return NeighboringRelation.REPLACE_ONE


def _training_event(
    n: int, batch_size: int, steps: int, noise_multiplier: float, sampling: str
) -> dp_event.DpEvent:
    """The DpEvent of the whole DP-SGD run: `steps` subsampled Gaussian steps."""
    if sampling == "poisson":
        step = dp_event.PoissonSampledDpEvent(
            sampling_probability=sampling_probability(n, batch_size),
            event=dp_event.GaussianDpEvent(noise_multiplier),
        )
    else:
        # Replacing one example moves a sum of clipped gradients by up to 2C, but dp_accounting's
        # without-replacement RDP treats the Gaussian's noise multiplier as noise/sensitivity
        # (google/differential-privacy issue #378); halving it accounts for the 2C sensitivity.
        step = dp_event.SampledWithoutReplacementDpEvent(
            source_dataset_size=n,
            sample_size=batch_size,
            event=dp_event.GaussianDpEvent(noise_multiplier / 2.0),
        )
    return dp_event.SelfComposedDpEvent(event=step, count=steps)


def classic_rdp_to_epsilon(
    orders: tuple[float, ...] | list[float] | np.ndarray,
    rdp: list[float] | np.ndarray,
    delta: float,
) -> tuple[float, float]:
    """Classic RDP-to-DP conversion: (min_a rdp(a) + log(1/delta)/(a-1), argmin order)."""
    orders_array = np.asarray(orders, dtype=float)
    rdp_array = np.asarray(rdp, dtype=float)
    if orders_array.shape != rdp_array.shape:
        raise ValueError("orders and rdp must have the same length")
    if np.any(orders_array <= 1):
        raise ValueError("the classic conversion needs every order > 1")
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta must lie in (0, 1), got {delta!r}")
    epsilons = rdp_array + math.log(1.0 / delta) / (orders_array - 1.0)
    if np.all(np.isinf(epsilons)):
        return math.inf, float(orders_array[0])
    best = int(np.nanargmin(epsilons))
    return float(epsilons[best]), float(orders_array[best])


def _rdp_accountant(
    orders: tuple[float, ...], event: dp_event.DpEvent, sampling: str
) -> rdp_privacy_accountant.RdpAccountant:
    """An RdpAccountant over `orders` with `event` composed."""
    accountant = rdp_privacy_accountant.RdpAccountant(
        orders=list(orders), neighboring_relation=_neighboring_relation(sampling)
    )
    accountant.compose(event)
    return accountant


def _pld_accountant(event: dp_event.DpEvent) -> pld_privacy_accountant.PLDAccountant:
    """A PLDAccountant at the module's discretization with `event` composed."""
    accountant = pld_privacy_accountant.PLDAccountant(
        neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
        value_discretization_interval=PLD_VALUE_DISCRETIZATION_INTERVAL,
    )
    accountant.compose(event)
    return accountant


@functools.lru_cache(maxsize=4096)
def _epsilon(
    n: int,
    batch_size: int,
    steps: int,
    noise_multiplier: float,
    delta: float,
    accountant: str,
    sampling: str,
) -> float:
    """Epsilon for validated inputs with noise > 0 (cached: grids ask for the same point often)."""
    event = _training_event(n, batch_size, steps, noise_multiplier, sampling)
    if accountant == "rdp":
        return float(_rdp_accountant(RDP_ORDERS, event, sampling).get_epsilon(delta))
    if accountant == "pld":
        return float(_pld_accountant(event).get_epsilon(delta))
    rdp = _rdp_accountant(CLASSIC_RDP_ORDERS, event, sampling).rdp
    return classic_rdp_to_epsilon(CLASSIC_RDP_ORDERS, rdp, delta)[0]


def compute_epsilon(
    n: int,
    batch_size: int,
    epochs: float,
    noise_multiplier: float,
    delta: float | None = None,
    accountant: str = "rdp",
    sampling: str = "poisson",
    steps: int | None = None,
) -> float:
    """Epsilon of a DP-SGD run on n examples under the named accountant (delta defaults to 1/n).

    ``steps`` (optional) is the number of steps the training really took; by default
    ``ceil(epochs * n / batch_size)``.
    """
    effective_delta = _check_inputs(
        n, batch_size, epochs, noise_multiplier, delta, accountant, sampling
    )
    n_steps = _resolve_steps(n, batch_size, epochs, steps)
    if noise_multiplier == 0:
        return math.inf
    return _epsilon(
        int(n),
        int(batch_size),
        n_steps,
        float(noise_multiplier),
        effective_delta,
        accountant,
        sampling,
    )


def compute_delta(
    n: int,
    batch_size: int,
    epochs: float,
    noise_multiplier: float,
    epsilon: float,
    accountant: str = "rdp",
    sampling: str = "poisson",
) -> float:
    """Smallest delta at which the run is (epsilon, delta)-DP under the named accountant."""
    _check_inputs(n, batch_size, epochs, noise_multiplier, None, accountant, sampling)
    if math.isnan(epsilon) or epsilon < 0:
        raise ValueError(f"epsilon must be >= 0, got {epsilon!r}")
    if noise_multiplier == 0:
        return 1.0
    steps = training_steps(n, batch_size, epochs)
    event = _training_event(n, batch_size, steps, noise_multiplier, sampling)
    if accountant == "rdp":
        return float(_rdp_accountant(RDP_ORDERS, event, sampling).get_delta(epsilon))
    if accountant == "pld":
        return float(_pld_accountant(event).get_delta(epsilon))
    rdp = _rdp_accountant(CLASSIC_RDP_ORDERS, event, sampling).rdp
    # Inverse of the classic conversion: delta = min_a exp((a - 1) * (rdp(a) - epsilon)).
    log_deltas = (np.asarray(CLASSIC_RDP_ORDERS) - 1.0) * (rdp - epsilon)
    return float(min(1.0, math.exp(float(np.min(log_deltas)))))


def epsilons_all(
    n: int,
    batch_size: int,
    epochs: float,
    noise_multiplier: float,
    delta: float | None = None,
    sampling: str = "poisson",
    steps: int | None = None,
) -> dict[str, float]:
    """Epsilon under every accountant, keyed as in ACCOUNTANTS (NaN where one cannot account)."""
    results: dict[str, float] = {}
    for accountant in ACCOUNTANTS:
        if accountant == "pld" and sampling == "fixed":
            # Not computable, and a NaN in a results record says so without a made-up bound.
            results[accountant] = math.nan
            continue
        results[accountant] = compute_epsilon(
            n, batch_size, epochs, noise_multiplier, delta, accountant, sampling, steps
        )
    return results


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
    _check_inputs(n, batch_size, epochs, 1.0, delta, accountant, sampling)

    def epsilon_at(noise: float) -> float:
        return compute_epsilon(n, batch_size, epochs, noise, delta, accountant, sampling)

    low, high = 1.0, 1.0
    eps_low = eps_high = epsilon_at(1.0)
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


def describe_accounting(
    n: int,
    batch_size: int,
    epochs: float,
    noise_multiplier: float,
    delta: float | None = None,
    accountant: str = "rdp",
    sampling: str = "poisson",
    steps: int | None = None,
) -> dict[str, Any]:
    """Everything the accountant assumed, as plain JSON-able values for a results record."""
    effective_delta = _check_inputs(
        n, batch_size, epochs, noise_multiplier, delta, accountant, sampling
    )
    description: dict[str, Any] = {
        "accountant": accountant,
        "sampling": sampling,
        "neighboring_relation": _neighboring_relation(sampling).name.lower(),
        "n": int(n),
        "batch_size": int(batch_size),
        "epochs": float(epochs),
        "sampling_probability": sampling_probability(n, batch_size),
        "steps": _resolve_steps(n, batch_size, epochs, steps),
        "noise_multiplier": float(noise_multiplier),
        "delta": effective_delta,
        "dp_accounting_version": metadata.version("dp-accounting"),
    }
    if accountant == "rdp":
        description["orders"] = list(RDP_ORDERS)
        description["conversion"] = "improved (dp_accounting compute_epsilon)"
    elif accountant == "rdp-classic":
        description["orders"] = list(CLASSIC_RDP_ORDERS)
        description["conversion"] = "classic: min_a rdp(a) + log(1/delta)/(a-1)"
    else:
        description["value_discretization_interval"] = PLD_VALUE_DISCRETIZATION_INTERVAL
        description["pessimistic_estimate"] = True
    return description


def training_accounting(
    trainings: list[tuple[int, int]], batch_size: int, epochs: float, noise_multiplier: float
) -> dict[str, Any]:
    """Epsilons that bound every model of a set of trainings, each on its own n and real steps.

    ``trainings`` holds ``(n_train, steps_taken)`` of each released model (e.g. the CV folds).
    Each is accounted (Poisson subsampling, q = batch_size / n) with delta = 1/its n; the
    epsilon reported per accountant is the largest over them, so it bounds every one, and the
    training it came from is named.
    """
    if not trainings:
        raise ValueError("training_accounting needs at least one (n_train, steps) pair")
    per_training = [
        {
            "n": n,
            "steps": steps,
            "delta": 1.0 / n,
            "epsilon": epsilons_all(
                n, batch_size, epochs, noise_multiplier, delta=1.0 / n, steps=steps
            ),
        }
        for n, steps in sorted({(int(n), int(s)) for n, s in trainings})
    ]

    def worst(name: str) -> dict[str, Any]:
        finite = [t for t in per_training if not math.isnan(t["epsilon"][name])]
        return max(finite or per_training, key=lambda t: t["epsilon"][name])

    return {
        "epsilon": {name: worst(name)["epsilon"][name] for name in ACCOUNTANTS},
        "delta": max(t["delta"] for t in per_training),
        "worst_training": {
            name: {"n": worst(name)["n"], "steps": worst(name)["steps"]} for name in ACCOUNTANTS
        },
        "per_training": per_training,
    }

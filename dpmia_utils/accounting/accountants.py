"""The privacy of a DP-SGD run: epsilon (or delta) under three accountants, and what they assumed.

Three accountants, all built on Google's ``dp_accounting`` (0.4.3):

``"rdp"``
    Renyi DP over a dense list of orders (:data:`RDP_ORDERS`), converted to (epsilon, delta) with
    dp_accounting's improved conversion (Canonne, Kamath, Steinke 2020; Asoodeh et al. 2020).
``"pld"``
    Privacy loss distributions (Koskela et al.; Meiser and Mohammadi), pessimistic discretization
    with :data:`PLD_VALUE_DISCRETIZATION_INTERVAL`. The tightest of the three.
``"rdp-classic"``
    The paper's accountant (:mod:`.classic`): RDP at the tensorflow-privacy tutorials' orders and
    the classic conversion. It reproduces the paper's published epsilons; use it to compare
    with them.

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

from dp_accounting import dp_event
from dp_accounting.pld import pld_privacy_accountant
from dp_accounting.privacy_accountant import NeighboringRelation, PrivacyAccountant
from dp_accounting.rdp import rdp_privacy_accountant

from .classic import (
    _COMPUTE_DP_SGD_PRIVACY_ORDERS,
    CLASSIC_RDP_ORDERS,
    classic_rdp_to_delta,
    classic_rdp_to_epsilon,
)

ACCOUNTANTS: tuple[str, ...] = ("rdp", "pld", "rdp-classic")
#: The sampling schemes the accountants analyse (see above). Not the training's batch schemes
#: (``training`` "poisson" or "shuffle"): a shuffled training is accounted as "poisson", the
#: paper's approximation.
SAMPLING_SCHEMES: tuple[str, ...] = ("poisson", "fixed")

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


def sampling_probability(n: int, batch_size: int) -> float:
    """The per-step sampling rate q = batch_size / n."""
    return batch_size / n


def training_steps(n: int, batch_size: int, epochs: float) -> int:
    """Number of DP-SGD steps, ceil(epochs * n / batch_size), as tensorflow-privacy counts them."""
    return int(math.ceil(epochs * n / batch_size))


def _check_inputs(
    n: int,
    batch_size: int,
    epochs: float,
    noise_multiplier: float,
    delta: float | None,
    accountant: str,
    sampling: str,
    steps: int | None = None,
) -> tuple[float, int]:
    """Raise ValueError on any invalid accounting input; return the delta and steps to account.

    The steps are the ones given (a training's real count) or tensorflow-privacy's formula.
    """
    if accountant not in ACCOUNTANTS:
        raise ValueError(f"unknown accountant {accountant!r}; expected one of {ACCOUNTANTS}")
    if sampling not in SAMPLING_SCHEMES:
        raise ValueError(f"unknown sampling {sampling!r}; expected one of {SAMPLING_SCHEMES}")
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
    if steps is None:
        return effective_delta, training_steps(n, batch_size, epochs)
    if isinstance(steps, bool) or int(steps) != steps or steps <= 0:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    return effective_delta, int(steps)


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


def _composed(
    n: int, batch_size: int, steps: int, noise_multiplier: float, accountant: str, sampling: str
) -> PrivacyAccountant:
    """The named accountant with the whole run composed (RDP orders or PLD grid as documented)."""
    composed: PrivacyAccountant
    if accountant == "pld":
        composed = pld_privacy_accountant.PLDAccountant(
            neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
            value_discretization_interval=PLD_VALUE_DISCRETIZATION_INTERVAL,
        )
    else:
        orders = RDP_ORDERS if accountant == "rdp" else CLASSIC_RDP_ORDERS
        composed = rdp_privacy_accountant.RdpAccountant(
            orders=list(orders), neighboring_relation=_neighboring_relation(sampling)
        )
    composed.compose(_training_event(n, batch_size, steps, noise_multiplier, sampling))
    return composed


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
    composed = _composed(n, batch_size, steps, noise_multiplier, accountant, sampling)
    if accountant == "rdp-classic":
        return classic_rdp_to_epsilon(CLASSIC_RDP_ORDERS, composed.rdp, delta)[0]
    return float(composed.get_epsilon(delta))


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
    effective_delta, n_steps = _check_inputs(
        n, batch_size, epochs, noise_multiplier, delta, accountant, sampling, steps
    )
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
    _, steps = _check_inputs(n, batch_size, epochs, noise_multiplier, None, accountant, sampling)
    if math.isnan(epsilon) or epsilon < 0:
        raise ValueError(f"epsilon must be >= 0, got {epsilon!r}")
    if noise_multiplier == 0:
        return 1.0
    composed = _composed(n, batch_size, steps, noise_multiplier, accountant, sampling)
    if accountant == "rdp-classic":
        return classic_rdp_to_delta(CLASSIC_RDP_ORDERS, composed.rdp, epsilon)
    return float(composed.get_delta(epsilon))


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
    effective_delta, n_steps = _check_inputs(
        n, batch_size, epochs, noise_multiplier, delta, accountant, sampling, steps
    )
    description: dict[str, Any] = {
        "accountant": accountant,
        "sampling": sampling,
        "neighboring_relation": _neighboring_relation(sampling).name.lower(),
        "n": int(n),
        "batch_size": int(batch_size),
        "epochs": float(epochs),
        "sampling_probability": sampling_probability(n, batch_size),
        "steps": n_steps,
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

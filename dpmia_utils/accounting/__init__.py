"""Privacy accounting for DP-SGD: epsilon from training settings, noise from a target epsilon.

``accountants`` gives a run's epsilon (or delta) under the three accountants and records what
they assumed; ``classic`` is the paper's accountant, which reproduces its published epsilons;
``calibration`` finds the noise that meets a target epsilon.
"""

from .accountants import (
    ACCOUNTANTS,
    PLD_VALUE_DISCRETIZATION_INTERVAL,
    RDP_ORDERS,
    SAMPLING_SCHEMES,
    compute_delta,
    compute_epsilon,
    describe_accounting,
    epsilons_all,
    sampling_probability,
    training_accounting,
    training_steps,
)
from .calibration import CALIBRATION_RTOL, calibrate_noise
from .classic import CLASSIC_RDP_ORDERS, classic_rdp_to_delta, classic_rdp_to_epsilon

__all__ = [
    "ACCOUNTANTS",
    "CALIBRATION_RTOL",
    "CLASSIC_RDP_ORDERS",
    "PLD_VALUE_DISCRETIZATION_INTERVAL",
    "RDP_ORDERS",
    "SAMPLING_SCHEMES",
    "calibrate_noise",
    "classic_rdp_to_delta",
    "classic_rdp_to_epsilon",
    "compute_delta",
    "compute_epsilon",
    "describe_accounting",
    "epsilons_all",
    "sampling_probability",
    "training_accounting",
    "training_steps",
]

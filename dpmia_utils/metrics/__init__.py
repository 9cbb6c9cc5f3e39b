"""Membership-inference metrics: ROC, AUC, TPR at low FPR, advantage, accuracy, empirical epsilon.

``roc`` computes the metrics from scores and hard guesses, ``empirical_epsilon`` the epsilon
lower bound hard guesses prove, ``intervals`` the bootstrap intervals and permutation p-values,
and ``summary`` puts them together into the one record per attack that the study stores
(:func:`summarize_attack`; its docstring says which numbers are honest and which optimistic).
"""

from .empirical_epsilon import empirical_epsilon_lower_bound
from .intervals import bootstrap_ci, permutation_test
from .roc import (
    MIN_FALSE_POSITIVES_FOR_TPR_AT_FPR,
    attack_accuracy,
    balanced_accuracy,
    best_threshold_accuracy,
    membership_advantage,
    prediction_advantage,
    roc_auc,
    roc_curve_points,
    tpr_at_fpr,
    tpr_at_fpr_is_estimable,
)
from .summary import summarize_attack

__all__ = [
    "MIN_FALSE_POSITIVES_FOR_TPR_AT_FPR",
    "attack_accuracy",
    "balanced_accuracy",
    "best_threshold_accuracy",
    "bootstrap_ci",
    "empirical_epsilon_lower_bound",
    "membership_advantage",
    "permutation_test",
    "prediction_advantage",
    "roc_auc",
    "roc_curve_points",
    "summarize_attack",
    "tpr_at_fpr",
    "tpr_at_fpr_is_estimable",
]

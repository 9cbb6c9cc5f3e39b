"""Membership inference attacks: the paper's shadow-model attack, the loss attack and LiRA.

Every attack scores a balanced evaluation set of members (the target's training records) and
non-members (records the target never saw, no individual on both sides) with a membership
score, higher meaning "more likely a member", and returns an :class:`AttackResult`. Hard
predictions (the paper's accuracy) come from a rule fixed without the evaluation labels, never
from a threshold chosen on them (:func:`dpmia_utils.metrics.summarize_attack`).

Modules: ``scores`` (model access, statistics, the result type), ``shadow`` (Chen, Wang, Shi
2021, section 4.4), ``loss`` (Yeom et al. 2018), ``lira`` (Carlini et al. 2022, offline) and
``protocol`` (:func:`attack_targets`: the fold models attacked over repeats, the one way the
study runs the attacks).
"""

from .lira import (
    LIRA_OFFLINE_LEVEL,
    lira_attack,
    lira_decision_rule,
    lira_offline_scores,
    lira_predictions,
    reference_model_plan,
    reference_statistics,
)
from .loss import loss_attack
from .protocol import (
    AttackOutcome,
    aggregate_repeats,
    assert_disjoint_ids,
    attack_names,
    attack_targets,
    membership_evaluation_set,
    summary_metrics,
)
from .scores import (
    AttackResult,
    LogitsFn,
    TrainFn,
    as_logits_fn,
    attack_features,
    binary_labels,
    black_box_train_fn,
    keras_train_fn,
    lira_statistic,
    mean_loss,
    probability_only,
    true_label_log_likelihood,
)
from .shadow import ATTACK_FOREST_PARAMS, shadow_model_attack

__all__ = [
    "ATTACK_FOREST_PARAMS",
    "LIRA_OFFLINE_LEVEL",
    "AttackOutcome",
    "AttackResult",
    "LogitsFn",
    "TrainFn",
    "aggregate_repeats",
    "as_logits_fn",
    "assert_disjoint_ids",
    "attack_features",
    "attack_names",
    "attack_targets",
    "binary_labels",
    "black_box_train_fn",
    "keras_train_fn",
    "lira_attack",
    "lira_decision_rule",
    "lira_offline_scores",
    "lira_predictions",
    "lira_statistic",
    "loss_attack",
    "mean_loss",
    "membership_evaluation_set",
    "probability_only",
    "reference_model_plan",
    "reference_statistics",
    "shadow_model_attack",
    "summary_metrics",
    "true_label_log_likelihood",
]

"""Training the target models: plain SGD and DP-SGD with L1 as a proximal step, CV and selection.

Modules, in the order a training run uses them: :mod:`.config` (``TrainConfig``, seed tags),
:mod:`.sampling` (which rows each step uses), :mod:`.losses`, :mod:`.engines` (the per-step
sum of clipped gradients: ``fast`` and ``reference``), :mod:`.noise` and :mod:`.dpsgd` (the
privacy mechanism and the L1 prox step, shared by every engine), :mod:`.loop` (the compiled
epoch loop, ``train_model``), :mod:`.checkpoints` (saved prefixes of trainings, shared across
runs that differ only in epochs), :mod:`.result` (``TrainResult``), :mod:`.tf_privacy`
(tensorflow-privacy's optimizer under ``model.fit``, a cross-check), :mod:`.cv`
(``cross_validate``) and :mod:`.selection` (hyperparameter search by CV). The converged L1
reference, re-exported here, lives in :mod:`dpmia_utils.lasso_reference`, outside this package,
so that computing it does not import TensorFlow.
"""

from dpmia_utils.lasso_reference import converged_l1_reference, fit_l1_logistic
from dpmia_utils.training import checkpoints
from dpmia_utils.training.config import (
    LOSSES,
    SAMPLINGS,
    TF_PRIVACY_ENGINE,
    Sampling,
    TrainConfig,
)
from dpmia_utils.training.cv import CVResult, cross_validate
from dpmia_utils.training.dpsgd import private_gradient, soft_threshold
from dpmia_utils.training.engines import (
    BatchGradient,
    ClippedGradientEngine,
    ClippedGradSum,
    FastEngine,
    ReferenceEngine,
    StepBatch,
    available_engines,
    clip_and_sum,
    make_engine,
    register_engine,
)
from dpmia_utils.training.loop import EpochStats, EpochTrainer, train_model
from dpmia_utils.training.losses import evaluate, loss_gradient, per_example_loss
from dpmia_utils.training.noise import box_muller, gaussian_noise
from dpmia_utils.training.result import TrainResult
from dpmia_utils.training.sampling import (
    PAD_MULTIPLE,
    EpochPlan,
    epoch_batches,
    plan_epoch,
    poisson_masks,
    poisson_slots,
    shuffle_permutation,
    steps_per_epoch,
)
from dpmia_utils.training.selection import Selection, candidates, select_configuration
from dpmia_utils.training.tf_privacy import ProximalL1Callback

__all__ = [
    "LOSSES",
    "PAD_MULTIPLE",
    "SAMPLINGS",
    "TF_PRIVACY_ENGINE",
    "BatchGradient",
    "CVResult",
    "ClippedGradSum",
    "ClippedGradientEngine",
    "EpochPlan",
    "EpochStats",
    "EpochTrainer",
    "FastEngine",
    "ProximalL1Callback",
    "ReferenceEngine",
    "Sampling",
    "Selection",
    "StepBatch",
    "TrainConfig",
    "TrainResult",
    "available_engines",
    "box_muller",
    "candidates",
    "checkpoints",
    "clip_and_sum",
    "converged_l1_reference",
    "cross_validate",
    "epoch_batches",
    "evaluate",
    "fit_l1_logistic",
    "gaussian_noise",
    "loss_gradient",
    "make_engine",
    "per_example_loss",
    "plan_epoch",
    "poisson_masks",
    "poisson_slots",
    "private_gradient",
    "register_engine",
    "select_configuration",
    "shuffle_permutation",
    "soft_threshold",
    "steps_per_epoch",
    "train_model",
]

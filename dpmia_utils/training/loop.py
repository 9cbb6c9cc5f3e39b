"""The custom training loop: (DP-)SGD with the L1 proximal step, one compiled graph per epoch.

Execution: the training data stay resident as tensors; each epoch's batches are computed in
numpy (:func:`.sampling.plan_epoch`: padded to multiples of ``PAD_MULTIPLE`` with masked rows)
and the whole epoch runs as one ``tf.function`` (a graph loop over the steps, traced once per
model). XLA (``jit_compile``) was measured slower on this kind of CPU, for the conv and for the
Lasso. The step itself (:mod:`.dpsgd`) is the same for every engine (:mod:`.engines`).

Randomness: model initialisation, batch sampling, DP noise and dropout each use a seed derived
from ``TrainConfig.seed`` (the ``SEED_*`` tags of :mod:`.config`); sampling uses numpy's
seeded generator; noise (:func:`.noise.gaussian_noise`) and dropout masks are stateless,
keyed by (their seed, global step), so the same seed gives identical weights on one machine.

Dropout in training never uses Keras's stateful dropout: each step draws one mask for the
batch with :func:`dpmia_utils.models.dropout_mask`, independent of the data; every engine (and
the non-DP path) applies that mask through :func:`dpmia_utils.models.forward` or its
hand-written equivalent, so engines agree exactly with dropout on. Inference
(:func:`.losses.evaluate`, ``predict_logits``) never drops anything.

``engine="tfp-keras"`` hands the run to :mod:`.tf_privacy` instead.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from dpmia_utils import seeds
from dpmia_utils.models import ModelSpec, build_model, dropout_mask, dropout_rate, kernel_variables
from dpmia_utils.training.checkpoints import Checkpoint, active_store, training_key
from dpmia_utils.training.config import (
    SEED_DROPOUT,
    SEED_INIT,
    SEED_NOISE,
    TF_PRIVACY_ENGINE,
    TrainConfig,
    training_arrays,
)
from dpmia_utils.training.dpsgd import private_gradient, soft_threshold
from dpmia_utils.training.engines.base import BatchGradient, ClippedGradientEngine, StepBatch
from dpmia_utils.training.engines.registry import make_engine
from dpmia_utils.training.losses import evaluate
from dpmia_utils.training.result import TrainResult, empty_history
from dpmia_utils.training.sampling import plan_epoch, steps_per_epoch
from dpmia_utils.training.tf_privacy import train_with_tf_privacy


def _step_seed(seed: int, global_step: tf.Tensor) -> tf.Tensor:
    """The stateless seed ``[seed, global step]`` of one step's noise or dropout."""
    return tf.stack([tf.constant(seed, tf.int64), tf.cast(global_step, tf.int64)])


class _EpochRunner:
    """Builds one ``tf.function`` that runs a whole epoch of (DP-)SGD with the L1 prox step.

    The data stay resident as tensors; the epoch's batches arrive as one precomputed
    :class:`.sampling.EpochPlan`, so each step only slices, gathers and computes.
    """

    def __init__(self, engine: ClippedGradientEngine, spec: ModelSpec, config: TrainConfig) -> None:
        self.engine = engine
        self.config = config
        self.variables = engine.variables
        self.kernel_refs = {k.ref() for k in kernel_variables(engine.model)}
        self.l1_threshold = float(config.learning_rate) * float(spec.l1)
        self.noise_seed = seeds.derive(config.seed, SEED_NOISE)
        self.dropout_seed = seeds.derive(config.seed, SEED_DROPOUT)
        self.dropout = dropout_rate(engine.model) > 0
        # One trace for every epoch: only the number of features is fixed.
        n_features = int(engine.model.inputs[0].shape[1])
        vector = tf.TensorSpec([None], tf.int32)
        signature = [
            tf.TensorSpec([None, n_features], tf.float32),  # X
            tf.TensorSpec([None], tf.float32),  # y
            vector,  # index
            tf.TensorSpec([None], tf.float32),  # mask
            vector,  # segments
            vector,  # offsets
            vector,  # sizes
            tf.TensorSpec([], tf.int64),  # first step
        ]
        self._compiled = tf.function(self._run_epoch, input_signature=signature)
        self._traced = False

    def run(self, *tensors: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Run one epoch (see :meth:`_run_epoch`), tracing the graph on the first call."""
        if not self._traced:
            # Trace outside the call: tf.function's retracing detector counts traces per
            # Python function across instances, and would warn once a few models (CV folds,
            # shadow models) had each traced their own runner once.
            self._compiled.get_concrete_function()
            self._traced = True
        return self._compiled(*tensors)

    def _apply(self, grads: list[tf.Tensor]) -> None:
        lr = float(self.config.learning_rate)
        for var, grad in zip(self.variables, grads, strict=True):
            if self.l1_threshold > 0 and var.ref() in self.kernel_refs:
                # SGD step then the L1 prox step, written back once.
                var.assign(soft_threshold(var - lr * grad, self.l1_threshold))
            else:
                var.assign_sub(lr * grad)

    def _step_gradient(
        self,
        xb: tf.Tensor,
        yb: tf.Tensor,
        mask: tf.Tensor,
        n_real: tf.Tensor,
        segments: tf.Tensor,
        global_step: tf.Tensor,
    ) -> BatchGradient:
        cfg = self.config
        drop = None
        if self.dropout:
            drop = dropout_mask(
                self.engine.model, tf.shape(xb)[0], _step_seed(self.dropout_seed, global_step)
            )
        if not cfg.dp:
            return self.engine.mean_grad(StepBatch(xb, yb, mask, drop))
        m = cfg.microbatch_size
        segment_ids, num_segments = None, None
        if cfg.sampling == "poisson":
            # Data-independent denominator: the expected number of microbatches.
            denominator = tf.constant(float(cfg.num_microbatches))
            if m > 1:
                segment_ids, num_segments = segments, cfg.num_microbatches
        else:
            # As tensorflow-privacy: the number of microbatches in this batch.
            denominator = tf.cast((n_real + m - 1) // m, tf.float32)
            if m > 1:
                segment_ids, num_segments = segments, (tf.shape(xb)[0] + m - 1) // m
        return private_gradient(
            self.engine,
            StepBatch(xb, yb, mask, drop, segment_ids, num_segments),
            l2_clip=float(cfg.l2_clip),
            noise_multiplier=float(cfg.noise_multiplier),
            denominator=denominator,
            noise_seed=_step_seed(self.noise_seed, global_step),
        )

    def _run_epoch(
        self,
        X: tf.Tensor,
        y: tf.Tensor,
        index: tf.Tensor,
        mask: tf.Tensor,
        segments: tf.Tensor,
        offsets: tf.Tensor,
        sizes: tf.Tensor,
        first_step: tf.Tensor,
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """One epoch over an :class:`.sampling.EpochPlan`; returns the summed loss and hits."""
        loss_sum = tf.constant(0.0, tf.float32)
        correct = tf.constant(0.0, tf.float32)
        for step in tf.range(tf.size(sizes)):
            start, stop = offsets[step], offsets[step + 1]
            idx = index[start:stop]
            step_mask = mask[start:stop]
            xb = tf.gather(X, idx)
            yb = tf.gather(y, idx)
            result = self._step_gradient(
                xb,
                yb,
                step_mask,
                sizes[step],
                segments[start:stop],
                first_step + tf.cast(step, tf.int64),
            )
            self._apply(result.grads)
            loss_sum += tf.reduce_sum(step_mask * result.per_example_loss)
            predicted = tf.cast(result.logits > 0, tf.float32)
            correct += tf.reduce_sum(step_mask * tf.cast(tf.equal(predicted, yb), tf.float32))
        return loss_sum, correct


class EpochStats(NamedTuple):
    """What one epoch of :class:`EpochTrainer` did."""

    loss: float  # mean data loss over the examples seen (running, as Keras reports it)
    accuracy: float
    batch_sizes: np.ndarray  # realised size of every step
    seconds: float


class EpochTrainer:
    """A freshly initialised model with its engine and compiled epoch: train one epoch at a time.

    :func:`train_model` is a loop over :meth:`run_epoch`; benchmarks time the same calls.
    """

    def __init__(self, X: np.ndarray, y: np.ndarray, spec: ModelSpec, config: TrainConfig) -> None:
        X, y = training_arrays(X, y, config.batch_size, keep_integer_features=True)
        self.n, n_features = X.shape
        if config.engine == TF_PRIVACY_ENGINE:
            raise ValueError(f"engine {TF_PRIVACY_ENGINE!r} runs under model.fit, not here")
        self.spec = spec
        self.config = config
        self.model = build_model(spec, n_features, seed=seeds.derive(config.seed, SEED_INIT))
        self.engine = make_engine(config.engine, self.model, spec, loss=config.loss)
        self._runner = _EpochRunner(self.engine, spec, config)
        # Resident for the whole run: each step gathers its rows inside the graph. int8
        # genotypes become float32 inside TensorFlow (exact), not through a float32 numpy
        # copy beside the tensor (170 MB on a real-data fold).
        self._X = tf.cast(tf.constant(X), tf.float32)
        self._y = tf.constant(y)
        self.steps_per_epoch = steps_per_epoch(self.n, config.batch_size)

    def run_epoch(self, epoch: int) -> EpochStats:
        """Run epoch ``epoch`` (its batches and noise are fixed by the seed and the epoch)."""
        started = time.perf_counter()
        plan = plan_epoch(self.n, self.config, epoch)
        loss_sum, correct = self._runner.run(
            self._X,
            self._y,
            *(tf.constant(part) for part in plan),
            tf.constant(epoch * self.steps_per_epoch, tf.int64),
        )
        seen = max(float(plan.sizes.sum()), 1.0)
        return EpochStats(
            loss=float(loss_sum) / seen,
            accuracy=float(correct) / seen,
            batch_sizes=plan.sizes,
            seconds=time.perf_counter() - started,
        )


def train_model(
    X: np.ndarray,
    y: np.ndarray,
    spec: ModelSpec,
    config: TrainConfig,
    *,
    X_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    progress: bool = False,
) -> TrainResult:
    """Train a target model with (DP-)SGD and the L1 proximal step (see :mod:`.dpsgd`).

    ``history`` holds, per epoch, the running mean training loss (``config.loss``, with the
    step's dropout) and accuracy over the examples seen during the epoch (as Keras reports
    them) and, given validation data, the BCE from logits and accuracy on it after the epoch
    (no dropout).
    """
    if config.engine == TF_PRIVACY_ENGINE:
        X, y = training_arrays(X, y, config.batch_size)
        return train_with_tf_privacy(
            X, y, spec, config, X_val=X_val, y_val=y_val, progress=progress
        )

    started = time.perf_counter()
    trainer = EpochTrainer(X, y, spec, config)
    history = empty_history()
    batch_sizes: list[np.ndarray] = []
    epoch_seconds: list[float] = []
    if X_val is None or y_val is None:
        X_val = y_val = None
    else:
        # Scored every epoch: convert once (the stages pass int8 genotypes).
        X_val = np.asarray(X_val, dtype=np.float32)
    # A saved prefix of this very training (another run's, with fewer or more epochs): load
    # it and train only the remaining epochs; bit-identical to training them all here.
    store = active_store()
    key = training_key(X, y, spec, config, X_val, y_val) if store is not None else ""
    resumed = store.latest(key, config.epochs) if store is not None else None
    if resumed is not None:
        trainer.model.set_weights(resumed.weights)
        history = {k: list(resumed.history[k]) for k in history}
        batch_sizes, epoch_seconds = list(resumed.batch_sizes), list(resumed.epoch_seconds)
    epochs = range(resumed.epoch if resumed is not None else 0, config.epochs)
    if progress:
        from tqdm import tqdm

        epochs = tqdm(epochs, desc=f"{spec.kind} {'DP' if config.dp else 'plain'}", leave=False)
    for epoch in epochs:
        stats = trainer.run_epoch(epoch)
        history["loss"].append(stats.loss)
        history["accuracy"].append(stats.accuracy)
        if X_val is not None:
            val = evaluate(trainer.model, X_val, y_val)
            history["val_loss"].append(val["loss"])
            history["val_accuracy"].append(val["accuracy"])
        batch_sizes.append(stats.batch_sizes)
        epoch_seconds.append(stats.seconds)
        if store is not None and store.should_save(epoch + 1, config.epochs):
            saved = Checkpoint(
                epoch + 1, trainer.model.get_weights(), history, batch_sizes, epoch_seconds
            )
            store.save(key, saved)
    return TrainResult(
        model=trainer.model,
        history=history,
        steps=trainer.steps_per_epoch * config.epochs,
        sampling=config.sampling,
        expected_batch_size=config.batch_size,
        n_train=trainer.n,
        seconds=time.perf_counter() - started,
        config=config,
        spec=spec,
        microbatch_size=config.microbatch_size,
        batch_sizes=np.concatenate(batch_sizes) if batch_sizes else np.zeros(0, np.int32),
        epoch_seconds=epoch_seconds,
        engine=config.engine,
        resumed_epochs=resumed.epoch if resumed is not None else 0,
    )

"""``engine="tfp-keras"``: tensorflow-privacy's own optimizer under ``model.fit``.

For benchmarking and cross-checking the custom loop (:mod:`.loop`) against an independent
implementation of clipping, microbatching and averaging; shuffle sampling only.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from dpmia_utils import seeds
from dpmia_utils.models import ModelSpec, build_model, kernel_variables
from dpmia_utils.training.config import SEED_INIT, SEED_TFP, TF_PRIVACY_ENGINE, TrainConfig
from dpmia_utils.training.dpsgd import soft_threshold
from dpmia_utils.training.losses import per_example_loss
from dpmia_utils.training.result import TrainResult, empty_history
from dpmia_utils.training.sampling import shuffle_permutation, steps_per_epoch


class ProximalL1Callback(tf.keras.callbacks.Callback):
    """Applies the L1 soft-thresholding step to kernels after every optimizer step."""

    def __init__(self, kernels: Sequence[tf.Variable], threshold: float) -> None:
        super().__init__()
        self.kernels = list(kernels)
        self.threshold = float(threshold)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """Soft-threshold every kernel by ``learning_rate * l1``."""
        if self.threshold > 0:
            for kernel in self.kernels:
                kernel.assign(soft_threshold(kernel, self.threshold))


def train_with_tf_privacy(
    X: np.ndarray,
    y: np.ndarray,
    spec: ModelSpec,
    config: TrainConfig,
    *,
    X_val: np.ndarray | None,
    y_val: np.ndarray | None,
    progress: bool,
) -> TrainResult:
    """VectorizedDPKerasSGDOptimizer (or legacy SGD) under model.fit, on validated arrays.

    The batches are exactly the custom loop's shuffle batches (the same seeded permutation
    per epoch, fed through ``tf.data``), so with ``noise_multiplier = 0`` the two paths agree
    step for step. Remaining differences: shuffle sampling only; the DP noise comes from
    tensorflow-privacy's stateful ``tf.random.normal``, seeded via
    ``tf.keras.utils.set_random_seed`` (which also sets Python's, numpy's and TF's global
    seeds); with microbatches larger than one and ``n % batch_size != 0`` the last partial
    batch of each epoch is dropped, because tensorflow-privacy splits a batch into
    ``num_microbatches`` equal parts; the L1 prox step runs in a Keras callback after each
    step; ``history`` loss/accuracy are Keras's running means; dropout is Keras's own
    (stateful, seeded by ``set_random_seed``), so with dropout the masks differ from the
    custom loop's.
    """
    from tensorflow_privacy.privacy.optimizers.dp_optimizer_keras_vectorized import (
        VectorizedDPKerasSGDOptimizer,
    )

    if config.sampling != "shuffle":
        raise ValueError(f"engine={TF_PRIVACY_ENGINE!r} supports sampling='shuffle' only")
    started = time.perf_counter()
    n, p = X.shape
    tf.keras.utils.set_random_seed(seeds.derive(config.seed, SEED_TFP))
    model = build_model(spec, p, seed=seeds.derive(config.seed, SEED_INIT))
    m = config.microbatch_size
    if config.dp:
        optimizer = VectorizedDPKerasSGDOptimizer(
            l2_norm_clip=float(config.l2_clip),
            noise_multiplier=float(config.noise_multiplier),
            num_microbatches=None if m == 1 else config.num_microbatches,
            learning_rate=float(config.learning_rate),
        )
        reduction = tf.keras.losses.Reduction.NONE
    else:
        optimizer = tf.keras.optimizers.legacy.SGD(learning_rate=float(config.learning_rate))
        reduction = tf.keras.losses.Reduction.AUTO
    if config.loss == "logits":
        loss = tf.keras.losses.BinaryCrossentropy(from_logits=True, reduction=reduction)
    else:
        loss = _KerasTrainingLoss(config.loss, reduction=reduction)
    model.compile(
        optimizer=optimizer,
        loss=loss,
        metrics=[tf.keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0)],
    )
    drop_remainder = config.dp and m > 1 and n % config.batch_size != 0
    n_steps = n // config.batch_size if drop_remainder else steps_per_epoch(n, config.batch_size)
    permutations = np.stack([shuffle_permutation(n, config.seed, e) for e in range(config.epochs)])
    X_t, y_t = tf.constant(X), tf.constant(y[:, None])
    dataset = (
        tf.data.Dataset.from_tensor_slices(permutations.reshape(config.epochs, n))
        .flat_map(
            lambda perm: tf.data.Dataset.from_tensor_slices(perm).batch(
                config.batch_size, drop_remainder=drop_remainder
            )
        )
        .map(lambda idx: (tf.gather(X_t, idx), tf.gather(y_t, idx)))
        .prefetch(2)
    )
    validation = None
    if X_val is not None and y_val is not None:
        validation = (np.asarray(X_val, np.float32), np.asarray(y_val, np.float32)[:, None])
    timer = _EpochTimer()
    fit = model.fit(
        dataset,
        epochs=config.epochs,
        steps_per_epoch=n_steps,
        validation_data=validation,
        verbose=1 if progress else 0,
        callbacks=[
            ProximalL1Callback(kernel_variables(model), config.learning_rate * spec.l1),
            timer,
        ],
    )
    history = empty_history()
    for key in history:
        history[key] = [float(v) for v in fit.history.get(key, [])]
    sizes = [config.batch_size] * (n // config.batch_size)
    if not drop_remainder and n % config.batch_size:
        sizes.append(n % config.batch_size)
    return TrainResult(
        model=model,
        history=history,
        steps=n_steps * config.epochs,
        sampling="shuffle",
        expected_batch_size=config.batch_size,
        n_train=n,
        seconds=time.perf_counter() - started,
        config=config,
        spec=spec,
        microbatch_size=m,
        batch_sizes=np.tile(np.asarray(sizes, np.int32), config.epochs),
        epoch_seconds=timer.seconds,
        engine=TF_PRIVACY_ENGINE,
    )


class _KerasTrainingLoss(tf.keras.losses.Loss):
    """:func:`.losses.per_example_loss` as a Keras loss on (b, 1) labels and logits."""

    def __init__(self, loss: str, reduction: str = tf.keras.losses.Reduction.AUTO) -> None:
        super().__init__(reduction=reduction, name=f"{loss}_loss")
        self.loss = loss

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        """Per-example loss, shape (b,)."""
        y_true = tf.cast(tf.reshape(y_true, [-1]), y_pred.dtype)
        return per_example_loss(y_true, tf.reshape(y_pred, [-1]), self.loss)


class _EpochTimer(tf.keras.callbacks.Callback):
    """Records wall-clock seconds per epoch of ``model.fit``."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.seconds.append(time.perf_counter() - self._start)

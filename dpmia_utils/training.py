"""Plain SGD and DP-SGD training of the target models, with L1 applied as a proximal step.

What one training step does (both paths optimise the same objective, mean binary
cross-entropy from logits plus ``l1 * sum |penalised kernel weights|``; the penalised
kernels are :func:`dpmia_utils.models.kernel_variables`: the Lasso's dense kernel, the CNN's
conv kernel):

1. Sample a batch. ``sampling="poisson"``: every training example is included independently
   with probability ``q = batch_size / n`` (batches have random size, possibly zero);
   ``sampling="shuffle"``: a seeded permutation per epoch cut into consecutive batches of
   ``batch_size`` (the last one may be smaller), which is what the paper's code did.
2. Data gradient. Non-DP: the gradient of the mean loss over the batch. DP: the batch is
   split into microbatches, the gradient of each microbatch's mean loss is clipped to L2
   norm ``l2_clip`` over ALL trainable variables jointly, the clipped gradients are summed,
   Gaussian noise ``N(0, (l2_clip * noise_multiplier)^2)`` is added to every coordinate of
   the sum, and the result is divided by the number of microbatches (shuffle, as
   tensorflow-privacy does) or by the EXPECTED number of microbatches
   ``batch_size / microbatch_size`` (Poisson: a data-independent denominator, which is what
   the Poisson-subsampled Gaussian accountant assumes).
3. SGD update ``w <- w - learning_rate * g``.
4. L1 proximal step (soft-thresholding) on the penalised kernels, never biases:
   ``w <- sign(w) * max(|w| - learning_rate * l1, 0)``. The L1 term is data-independent,
   so it is neither clipped nor noised and costs no privacy; applying it the same way in
   the non-DP path keeps the two paths optimising the same objective.

Microbatches: ``microbatch_fraction = 1.0`` makes every example its own microbatch; ``0.5``
makes microbatches of 2 examples (the paper's "50% of batch size"). With shuffle batches,
microbatches are consecutive examples of the batch, as in tensorflow-privacy. With Poisson
batches and microbatches larger than one, each sampled example is assigned to one of the
``batch_size / microbatch_size`` microbatch slots uniformly at random (seeded), so adding or
removing one individual changes one microbatch only; an empty slot contributes zero. With
microbatches larger than one, the L2 sensitivity of the clipped sum under add/remove-one
adjacency is ``2 * l2_clip`` (tensorflow-privacy's ``used_microbatching=True``); the
accountant must be told (``TrainResult.microbatch_size``).

Loss: ``TrainConfig.loss = "logits"`` (the default) is binary cross-entropy from the logit
``z``. ``"paper-double-sigmoid"`` is the authors' code as it ran, a labelled ablation only:
their model ended in a sigmoid and their loss was ``BinaryCrossentropy(from_logits=True)``,
so the loss is ``BCE_from_logits(y, sigmoid(z))`` and its derivative
``(sigmoid(sigmoid(z)) - y) * sigmoid(z) * (1 - sigmoid(z))`` is at most a quarter of the
correct one. The model and its prediction (``z > 0``) are the same under both losses;
:func:`evaluate` always reports BCE from logits.

The CNN is the authors' (see :mod:`dpmia_utils.models`): one-hot input, Conv1D ("same",
ReLU), average pooling by 2, dropout, dense. Dropout in training never uses Keras's stateful
dropout: each step draws one mask for the batch with :func:`dpmia_utils.models.dropout_mask`,
keyed by a seed derived from ``TrainConfig.seed`` and the global step, independent of the
data; every engine (and the non-DP path) applies that mask through
:func:`dpmia_utils.models.forward` or its hand-written equivalent, so engines agree exactly
with dropout on. Inference (:func:`evaluate`, ``predict_logits``) never drops anything.

The per-step "sum of clipped microbatch gradients" is computed by a
:class:`ClippedGradientEngine` looked up by name (``TrainConfig.engine``); engines compute
gradients only. Sampling, noise, division, the SGD update and the proximal step live in this
module and are shared by every engine, so engines cannot differ in privacy semantics.
Engines: ``"fast"`` (the default; :mod:`dpmia_utils.fast_engine`: closed-form and ghost-norm
clipping without per-example gradients) and ``"reference"`` (explicit per-example gradients
via ``tf.vectorized_map``; slow for the CNN, kept as the cross-check).
``engine="tfp-keras"`` instead runs tensorflow-privacy's ``VectorizedDPKerasSGDOptimizer``
under ``model.fit`` (shuffle sampling only), for benchmarking and cross-checking.

Execution: the training data stay resident as tensors; each epoch's batches are computed in
numpy (:func:`plan_epoch`: padded to multiples of ``PAD_MULTIPLE`` with masked rows) and the
whole epoch runs as one ``tf.function`` (a graph loop over the steps, traced once per model).
XLA (``jit_compile``) was measured slower on this kind of CPU, for the conv and for the Lasso.

Randomness: model initialisation, batch sampling, DP noise and dropout each use a seed
derived from ``TrainConfig.seed``; sampling uses numpy's seeded generator; noise is
:func:`gaussian_noise` (Box-Muller on float64 ``tf.random.stateless_uniform``, so its tails
are not truncated: float32 uniforms would cap every draw near 5.65 standard deviations) and
dropout masks are ``tf.random.stateless_uniform``, both keyed by (their seed, global step),
so the same seed gives identical weights on one machine.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, NamedTuple

import numpy as np
import tensorflow as tf

from dpmia_utils.models import (
    ModelSpec,
    build_model,
    dropout_mask,
    dropout_rate,
    forward,
    kernel_variables,
    predict_logits,
    sparsity,
)

Sampling = Literal["poisson", "shuffle"]
SAMPLINGS: tuple[str, ...] = ("poisson", "shuffle")

#: The engine name that runs tensorflow-privacy's Keras optimizer under ``model.fit``.
TF_PRIVACY_ENGINE = "tfp-keras"

#: Batches are padded (with masked rows) to a multiple of this many examples.
PAD_MULTIPLE = 8

#: ``TrainConfig.loss`` values: the correct BCE from logits, and the authors' double sigmoid.
LOSSES: tuple[str, ...] = ("logits", "paper-double-sigmoid")

# Tags that separate the seed streams derived from TrainConfig.seed.
_SEED_INIT, _SEED_SAMPLING, _SEED_NOISE, _SEED_FOLD, _SEED_TFP, _SEED_DROPOUT = 1, 2, 3, 4, 5, 6


def derive_seed(seed: int, *tags: int) -> int:
    """A 31-bit seed derived from ``seed`` and integer tags (independent streams per tag)."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *tags]).generate_state(1)[0]
    return int(state & 0x7FFFFFFF)


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser, sampling, loss and DP-SGD settings of one training run.

    ``loss`` is ``"logits"`` (BCE from logits) or ``"paper-double-sigmoid"`` (the authors'
    ``BCE_from_logits(y, sigmoid(z))``, a labelled ablation; see the module docstring).
    """

    learning_rate: float = 0.01
    batch_size: int = 16
    epochs: int = 50
    dp: bool = False
    l2_clip: float = 1.0
    noise_multiplier: float = 1.0
    microbatch_fraction: float = 1.0
    sampling: Sampling = "poisson"
    seed: int = 0
    engine: str = "fast"
    loss: str = "logits"

    def __post_init__(self) -> None:
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {self.sampling!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.batch_size < 1 or self.epochs < 0:
            raise ValueError("batch_size must be >= 1 and epochs >= 0")
        if self.learning_rate <= 0:
            raise ValueError("learning_rate must be positive")
        if self.l2_clip <= 0 or self.noise_multiplier < 0:
            raise ValueError("l2_clip must be positive and noise_multiplier non-negative")
        if self.batch_size % self.microbatch_size != 0:
            raise ValueError(
                f"batch_size {self.batch_size} is not a multiple of the microbatch size "
                f"{self.microbatch_size} implied by microbatch_fraction={self.microbatch_fraction}"
            )

    @property
    def microbatch_size(self) -> int:
        """Examples per microbatch: ``1 / microbatch_fraction`` (must be a whole number)."""
        fraction = float(self.microbatch_fraction)
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"microbatch_fraction must be in (0, 1], got {fraction}")
        size = round(1.0 / fraction)
        if abs(size * fraction - 1.0) > 1e-9:
            raise ValueError(f"1 / microbatch_fraction must be an integer, got {fraction}")
        return size

    @property
    def num_microbatches(self) -> int:
        """Microbatches in a full (or, under Poisson sampling, expected-size) batch."""
        return self.batch_size // self.microbatch_size

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form for records and hashing."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Rebuild a config from :meth:`to_dict` output (unknown keys are an error)."""
        return cls(**data)


# --------------------------------------------------------------------------------------
# Losses and evaluation


def per_example_loss(labels: tf.Tensor, logits: tf.Tensor, loss: str = "logits") -> tf.Tensor:
    """The training loss of each example from its logit ``z`` (see :data:`LOSSES`).

    ``"logits"``: binary cross-entropy from ``z``. ``"paper-double-sigmoid"``: binary
    cross-entropy from the "logit" ``sigmoid(z)``, as the authors' code computed it.
    """
    if loss == "paper-double-sigmoid":
        logits = tf.sigmoid(logits)
    elif loss != "logits":
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    return tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)


def loss_gradient(labels: tf.Tensor, logits: tf.Tensor, loss: str = "logits") -> tf.Tensor:
    """d per_example_loss / d logit for each example (the engines' residual).

    ``"logits"``: ``sigmoid(z) - y``, in [-1, 1]. ``"paper-double-sigmoid"``:
    ``(sigmoid(sigmoid(z)) - y) * sigmoid(z) * (1 - sigmoid(z))``, at most 1/4 in magnitude.
    """
    probability = tf.sigmoid(logits)
    if loss == "logits":
        return probability - labels
    if loss == "paper-double-sigmoid":
        return (tf.sigmoid(probability) - labels) * probability * (1.0 - probability)
    raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")


def evaluate(model: tf.keras.Model, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Mean BCE from logits (no L1 term, no dropout) and accuracy of ``model`` on (X, y)."""
    y = np.asarray(y, dtype=np.float64)
    logits = predict_logits(model, X)
    # Stable BCE from logits: max(z, 0) - z*y + log(1 + exp(-|z|)).
    losses = np.maximum(logits, 0) - logits * y + np.log1p(np.exp(-np.abs(logits)))
    accuracy = np.mean((logits > 0).astype(np.float64) == y)
    return {"loss": float(np.mean(losses)), "accuracy": float(accuracy)}


# --------------------------------------------------------------------------------------
# Gradient engines: data-loss gradients only; privacy semantics live in private_gradient().


class BatchGradient(NamedTuple):
    """Gradient of the mean data loss over a batch, with each example's loss and logit."""

    grads: list[tf.Tensor]
    per_example_loss: tf.Tensor
    logits: tf.Tensor


class ClippedGradSum(NamedTuple):
    """Sum over microbatches of clipped microbatch gradients, with per-example loss/logit."""

    grad_sum: list[tf.Tensor]
    per_example_loss: tf.Tensor
    logits: tf.Tensor


class ClippedGradientEngine:
    """Computes data-loss gradients of one model; subclasses supply ``clipped_grad_sum``.

    Methods are called inside ``tf.function``; they must be traceable and must not add
    noise, divide by a batch size or touch the variables: that is done by the trainer.
    Gradients are returned in the order of ``self.variables`` (the trainable variables).

    ``mask`` (float, 1 for a real example, 0 for padding) lets the trainer pad variable-size
    batches to a few fixed sizes (fewer distinct shapes run much faster on CPU); a padded
    example must contribute exactly nothing. ``None`` means every example is real.

    ``dropout_mask`` (from :func:`dpmia_utils.models.dropout_mask`, row ``i`` for example
    ``i``) is the training-time dropout of the batch; ``None`` means no dropout. ``loss`` is
    the training loss (:data:`LOSSES`), fixed when the engine is made.
    """

    name = "base"

    def __init__(self, model: tf.keras.Model, spec: ModelSpec, loss: str = "logits") -> None:
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        self.model = model
        self.spec = spec
        self.loss = loss
        self.variables: list[tf.Variable] = list(model.trainable_variables)

    def logits(self, x: tf.Tensor, dropout_mask: tf.Tensor | None = None) -> tf.Tensor:
        """Training-mode logits of a batch with the given dropout mask, shape (b,)."""
        return forward(self.model, x, dropout_mask)

    def mean_grad(
        self,
        x: tf.Tensor,
        y: tf.Tensor,
        mask: tf.Tensor | None = None,
        dropout_mask: tf.Tensor | None = None,
    ) -> BatchGradient:
        """Gradient of the mean loss over the real examples (non-DP); zero for an empty batch."""
        with tf.GradientTape() as tape:
            logits = self.logits(x, dropout_mask)
            losses = per_example_loss(y, logits, self.loss)
            if mask is None:
                mask = tf.ones_like(losses)
            count = tf.maximum(tf.reduce_sum(mask), 1.0)
            mean_loss = tf.reduce_sum(mask * losses) / count
        grads = tape.gradient(mean_loss, self.variables, unconnected_gradients="zero")
        return BatchGradient(list(grads), losses, logits)

    def clipped_grad_sum(
        self,
        x: tf.Tensor,
        y: tf.Tensor,
        l2_clip: float,
        segment_ids: tf.Tensor | None = None,
        num_segments: tf.Tensor | int | None = None,
        mask: tf.Tensor | None = None,
        dropout_mask: tf.Tensor | None = None,
    ) -> ClippedGradSum:
        """Sum of microbatch gradients each clipped to ``l2_clip`` jointly over all variables.

        ``segment_ids[i]`` in ``[0, num_segments)`` names the microbatch of example ``i``; a
        microbatch's gradient is the gradient of the mean loss over ITS real examples.
        ``segment_ids=None`` means every example is its own microbatch.
        """
        raise NotImplementedError


def clip_and_sum(
    grads: Sequence[tf.Tensor],
    l2_clip: float,
    segment_ids: tf.Tensor | None = None,
    num_segments: tf.Tensor | int | None = None,
    mask: tf.Tensor | None = None,
) -> list[tf.Tensor]:
    """Clip stacked per-example gradients (leading axis = example) per microbatch and sum.

    Padded examples (``mask == 0``) are zeroed first. With ``segment_ids``, the per-example
    gradients are then averaged over the real examples of each microbatch (the gradient of a
    microbatch's mean loss is the mean of its examples' gradients); empty microbatches are
    zero and contribute nothing.
    """
    grads = list(grads)

    def per_example(weights: tf.Tensor, g: tf.Tensor) -> tf.Tensor:
        return g * tf.reshape(weights, [-1] + [1] * (len(g.shape) - 1))

    if mask is not None:
        grads = [per_example(mask, g) for g in grads]
    if segment_ids is not None:
        real = mask if mask is not None else tf.ones_like(segment_ids, dtype=grads[0].dtype)
        counts = tf.maximum(tf.math.unsorted_segment_sum(real, segment_ids, num_segments), 1.0)
        grads = [
            per_example(1.0 / counts, tf.math.unsorted_segment_sum(g, segment_ids, num_segments))
            for g in grads
        ]
    squared_norms = tf.add_n(
        [tf.reduce_sum(tf.reshape(tf.square(g), [tf.shape(g)[0], -1]), axis=1) for g in grads]
    )
    # Same form as tensorflow-privacy: divide by max(norm / clip, 1).
    scale = 1.0 / tf.maximum(tf.sqrt(squared_norms) / l2_clip, 1.0)
    return [tf.tensordot(scale, g, axes=1) for g in grads]


class ReferenceEngine(ClippedGradientEngine):
    """Explicit per-example gradients via ``tf.vectorized_map`` over a GradientTape.

    (tf.vectorized_map was measured ~10x faster than tensorflow-privacy's ``tape.jacobian``
    for the CNN; its Conv1D filter gradient falls back to a per-example while_loop.)
    """

    name = "reference"

    def per_example_grads(
        self, x: tf.Tensor, y: tf.Tensor, dropout_mask: tf.Tensor | None = None
    ) -> tuple[list[tf.Tensor], tf.Tensor, tf.Tensor]:
        """Stacked per-example gradients (one tensor per variable), losses and logits."""

        def one_example(
            args: tuple[tf.Tensor, ...],
        ) -> tuple[list[tf.Tensor], tf.Tensor, tf.Tensor]:
            xi, yi = args[:2]
            mask_i = args[2][tf.newaxis] if len(args) > 2 else None
            with tf.GradientTape() as tape:
                logit = forward(self.model, xi[tf.newaxis], mask_i)[0]
                loss = per_example_loss(yi, logit, self.loss)
            grads = tape.gradient(loss, self.variables, unconnected_gradients="zero")
            return list(grads), loss, logit

        inputs = (x, y) if dropout_mask is None else (x, y, dropout_mask)
        grads, losses, logits = tf.vectorized_map(one_example, inputs)
        return list(grads), losses, logits

    def clipped_grad_sum(
        self,
        x: tf.Tensor,
        y: tf.Tensor,
        l2_clip: float,
        segment_ids: tf.Tensor | None = None,
        num_segments: tf.Tensor | int | None = None,
        mask: tf.Tensor | None = None,
        dropout_mask: tf.Tensor | None = None,
    ) -> ClippedGradSum:
        """Sum of per-microbatch clipped gradients from explicit per-example gradients."""
        grads, losses, logits = self.per_example_grads(x, y, dropout_mask)
        summed = clip_and_sum(grads, l2_clip, segment_ids, num_segments, mask)
        return ClippedGradSum(summed, losses, logits)


#: Called as ``factory(model, spec, loss=...)``; an engine class with the base signature fits.
EngineFactory = Callable[..., ClippedGradientEngine]
_ENGINES: dict[str, EngineFactory] = {}


def register_engine(name: str, factory: EngineFactory, *, overwrite: bool = False) -> None:
    """Make an engine available as ``TrainConfig(engine=name)``."""
    if name == TF_PRIVACY_ENGINE:
        raise ValueError(f"{TF_PRIVACY_ENGINE!r} is reserved for the tensorflow-privacy path")
    if name in _ENGINES and not overwrite:
        raise ValueError(f"engine {name!r} is already registered")
    _ENGINES[name] = factory


def available_engines() -> list[str]:
    """Names accepted by ``TrainConfig.engine`` (registered engines and ``tfp-keras``)."""
    return sorted(_ENGINES) + [TF_PRIVACY_ENGINE]


def make_engine(
    name: str, model: tf.keras.Model, spec: ModelSpec, loss: str = "logits"
) -> ClippedGradientEngine:
    """Instantiate the registered engine ``name`` for ``model`` and the training ``loss``."""
    if name not in _ENGINES:
        raise KeyError(f"unknown engine {name!r}; available: {available_engines()}")
    return _ENGINES[name](model, spec, loss=loss)


def _fast_engine(
    model: tf.keras.Model, spec: ModelSpec, loss: str = "logits"
) -> ClippedGradientEngine:
    """The "fast" engine (imported lazily: dpmia_utils.fast_engine imports this module)."""
    from dpmia_utils.fast_engine import FastEngine

    return FastEngine(model, spec, loss=loss)


register_engine("reference", ReferenceEngine)
register_engine("fast", _fast_engine)


# --------------------------------------------------------------------------------------
# The privacy semantics, shared by all engines.


def private_gradient(
    engine: ClippedGradientEngine,
    x: tf.Tensor,
    y: tf.Tensor,
    *,
    l2_clip: float,
    noise_multiplier: float,
    denominator: tf.Tensor | float,
    noise_seed: tf.Tensor,
    segment_ids: tf.Tensor | None = None,
    num_segments: tf.Tensor | int | None = None,
    mask: tf.Tensor | None = None,
    dropout_mask: tf.Tensor | None = None,
) -> BatchGradient:
    """DP-SGD gradient: (sum of clipped microbatch gradients + N(0, (C*sigma)^2)) / denominator.

    ``noise_seed`` is a stateless seed (shape [2] int); one Gaussian vector covers all
    variables jointly. Noise is skipped entirely when ``noise_multiplier == 0``.
    ``dropout_mask`` is the batch's training dropout (data-independent; ``None``: none).
    """
    clipped = engine.clipped_grad_sum(
        x, y, l2_clip, segment_ids, num_segments, mask, dropout_mask=dropout_mask
    )
    grad_sum = clipped.grad_sum
    if noise_multiplier > 0:
        sizes = [int(np.prod(v.shape)) for v in engine.variables]
        noise = gaussian_noise(sum(sizes), noise_seed, l2_clip * noise_multiplier)
        pieces = tf.split(noise, sizes)
        grad_sum = [g + tf.reshape(n, tf.shape(g)) for g, n in zip(grad_sum, pieces, strict=True)]
    denominator = tf.cast(denominator, tf.float32)
    return BatchGradient(
        [g / denominator for g in grad_sum], clipped.per_example_loss, clipped.logits
    )


def gaussian_noise(size: int, seed: tf.Tensor, stddev: float) -> tf.Tensor:
    """``size`` independent N(0, stddev^2) float32 draws, a pure function of the stateless ``seed``.

    Box-Muller (:func:`box_muller`) on float64 ``tf.random.stateless_uniform`` (Philox, one
    call for both uniforms of every pair). Float64 uniforms (2^-52 grid) let a draw reach
    8.5 standard deviations, beyond which the Gaussian's mass is ~2e-17; float32 uniforms
    would stop every draw near 5.65 standard deviations (a truncated Gaussian, which the
    accountant does not assume).
    """
    half = (size + 1) // 2
    uniform = tf.random.stateless_uniform([2, half], seed=seed, dtype=tf.float64)
    return box_muller(uniform[0], uniform[1], stddev)[:size]


def box_muller(u_radius: tf.Tensor, u_angle: tf.Tensor, stddev: float) -> tf.Tensor:
    """Box-Muller: float64 uniforms in [0, 1) -> 2n float32 normals (cos half, then sin half).

    Radius ``sqrt(-2 log(1 - u_radius))``, angle ``2 pi u_angle``. ``v = 1 - u_radius`` is
    exact in float64 and at least 2^-52, so it keeps its full tail when rounded to float32
    (normal range down to 1e-38); the logarithm and the trigonometry then run in float32,
    which was measured ~3x faster than float64 math (``log1p`` of the rounded ``u_radius``
    where that is below 1/2, so small radii keep float32 relative precision too). The
    result agrees with the all-float64 transform to float32 precision.
    """
    u_radius = tf.convert_to_tensor(u_radius, tf.float64)
    u_angle = tf.convert_to_tensor(u_angle, tf.float64)
    log_v = tf.where(
        u_radius < 0.5,
        tf.math.log1p(-tf.cast(u_radius, tf.float32)),
        tf.math.log(tf.cast(1.0 - u_radius, tf.float32)),
    )
    radius = tf.sqrt(-2.0 * log_v) * stddev
    angle = tf.cast((2.0 * math.pi) * u_angle, tf.float32)
    return tf.concat([radius * tf.cos(angle), radius * tf.sin(angle)], axis=0)


def soft_threshold(weights: tf.Tensor, threshold: float) -> tf.Tensor:
    """Proximal operator of ``threshold * |w|``: ``sign(w) * max(|w| - threshold, 0)``."""
    return tf.sign(weights) * tf.nn.relu(tf.abs(weights) - threshold)


# --------------------------------------------------------------------------------------
# Batch sampling (numpy, seeded): what the accountant must describe.


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Steps in one epoch: ``ceil(n / batch_size)`` for both sampling schemes."""
    return math.ceil(n / batch_size)


def _epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([derive_seed(seed, _SEED_SAMPLING), epoch]))


def poisson_masks(n: int, batch_size: int, seed: int, epoch: int) -> np.ndarray:
    """Boolean (steps, n) matrix: row s marks the examples in step s of ``epoch``.

    Every example joins every step independently with probability ``batch_size / n``.
    """
    rng = _epoch_rng(seed, epoch)
    return rng.random((steps_per_epoch(n, batch_size), n)) < (batch_size / n)


def poisson_slots(
    n: int, batch_size: int, num_microbatches: int, seed: int, epoch: int
) -> np.ndarray:
    """Int32 (steps, n) matrix: the microbatch slot each example would join at each step.

    Drawn uniformly and independently of the data, so adding or removing one individual
    never moves anyone else to another microbatch.
    """
    rng = np.random.default_rng(
        np.random.SeedSequence([derive_seed(seed, _SEED_SAMPLING), epoch, 1])
    )
    shape = (steps_per_epoch(n, batch_size), n)
    return rng.integers(0, num_microbatches, size=shape, dtype=np.int32)


def shuffle_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The seeded permutation of ``range(n)`` cut into consecutive batches in ``epoch``."""
    return _epoch_rng(seed, epoch).permutation(n).astype(np.int32)


def epoch_batches(n: int, config: TrainConfig, epoch: int) -> list[np.ndarray]:
    """The training-row indices of every step of ``epoch`` (sorted for Poisson batches)."""
    if config.sampling == "poisson":
        masks = poisson_masks(n, config.batch_size, config.seed, epoch)
        return [np.flatnonzero(row).astype(np.int32) for row in masks]
    perm = shuffle_permutation(n, config.seed, epoch)
    return [perm[start : start + config.batch_size] for start in range(0, n, config.batch_size)]


# --------------------------------------------------------------------------------------
# Results


@dataclass
class TrainResult:
    """A trained model and what the accountant and the records need to know about its run.

    ``steps`` is the number of noisy steps taken (empty Poisson batches included),
    ``expected_batch_size / n_train`` the sampling rate, ``microbatch_size > 1`` means the
    clipped sum's add/remove sensitivity is ``2 * l2_clip``, and ``batch_sizes`` holds the
    realised size of every step.
    """

    model: tf.keras.Model
    history: dict[str, list[float]]
    steps: int
    sampling: str
    expected_batch_size: int
    n_train: int
    seconds: float
    config: TrainConfig
    spec: ModelSpec
    microbatch_size: int = 1
    batch_sizes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    epoch_seconds: list[float] = field(default_factory=list)
    engine: str = "fast"

    @property
    def sampling_probability(self) -> float:
        """q = expected batch size / n (exact for Poisson, the usual approximation for shuffle)."""
        return self.expected_batch_size / self.n_train

    def summary(self) -> dict[str, Any]:
        """JSON-friendly description of the run (no model)."""
        return {
            "spec": self.spec.to_dict(),
            "config": self.config.to_dict(),
            "steps": self.steps,
            "sampling": self.sampling,
            "expected_batch_size": self.expected_batch_size,
            "n_train": self.n_train,
            "microbatch_size": self.microbatch_size,
            "mean_batch_size": float(np.mean(self.batch_sizes)) if self.batch_sizes.size else None,
            "seconds": self.seconds,
            "engine": self.engine,
            "final": {k: v[-1] for k, v in self.history.items() if v},
        }


def _empty_history() -> dict[str, list[float]]:
    return {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}


# --------------------------------------------------------------------------------------
# The custom training loop


class EpochPlan(NamedTuple):
    """Every step of one epoch as padded index batches, concatenated (computed in numpy).

    Step ``s`` covers rows ``offsets[s]:offsets[s + 1]`` of ``index``/``mask``/``segments``;
    its length is ``sizes[s]`` rounded up to a multiple of :data:`PAD_MULTIPLE` (at least
    one multiple, so an empty Poisson batch is a noise-only step). Padding rows point at
    training row 0 with mask 0. ``segments`` is each row's microbatch: its Poisson slot, or
    its position // microbatch size in a shuffle batch.
    """

    index: np.ndarray
    mask: np.ndarray
    segments: np.ndarray
    offsets: np.ndarray
    sizes: np.ndarray


def plan_epoch(n: int, config: TrainConfig, epoch: int) -> EpochPlan:
    """The padded batches of ``epoch``: exactly :func:`epoch_batches`, plus microbatch slots."""
    batches = epoch_batches(n, config, epoch)
    m = config.microbatch_size
    slots = None
    if config.sampling == "poisson" and config.dp and m > 1:
        slots = poisson_slots(n, config.batch_size, config.num_microbatches, config.seed, epoch)
    index, mask, segments = [], [], []
    sizes = np.array([len(batch) for batch in batches], dtype=np.int32)
    padded = np.maximum(-(-sizes // PAD_MULTIPLE), 1) * PAD_MULTIPLE
    for step, (batch, length) in enumerate(zip(batches, padded, strict=True)):
        pad = length - len(batch)
        index.append(np.concatenate([batch, np.zeros(pad, np.int32)]))
        mask.append(np.concatenate([np.ones(len(batch), np.float32), np.zeros(pad, np.float32)]))
        if slots is not None:
            segments.append(np.concatenate([slots[step, batch], np.zeros(pad, np.int32)]))
        else:
            segments.append(np.arange(length, dtype=np.int32) // m)
    offsets = np.concatenate([[0], np.cumsum(padded)]).astype(np.int32)
    return EpochPlan(
        index=np.concatenate(index).astype(np.int32),
        mask=np.concatenate(mask).astype(np.float32),
        segments=np.concatenate(segments).astype(np.int32),
        offsets=offsets,
        sizes=sizes,
    )


class _EpochRunner:
    """Builds one ``tf.function`` that runs a whole epoch of (DP-)SGD with the L1 prox step.

    The data stay resident as tensors; the epoch's batches arrive as one precomputed
    :class:`EpochPlan`, so each step only slices, gathers and computes.
    """

    def __init__(self, engine: ClippedGradientEngine, spec: ModelSpec, config: TrainConfig) -> None:
        self.engine = engine
        self.config = config
        self.variables = engine.variables
        self.kernel_refs = {k.ref() for k in kernel_variables(engine.model)}
        self.l1_threshold = float(config.learning_rate) * float(spec.l1)
        self.noise_seed = derive_seed(config.seed, _SEED_NOISE)
        self.dropout_seed = derive_seed(config.seed, _SEED_DROPOUT)
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
            drop_seed = tf.stack(
                [tf.constant(self.dropout_seed, tf.int64), tf.cast(global_step, tf.int64)]
            )
            drop = dropout_mask(self.engine.model, tf.shape(xb)[0], drop_seed)
        if not cfg.dp:
            return self.engine.mean_grad(xb, yb, mask, dropout_mask=drop)
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
        seed = tf.stack([tf.constant(self.noise_seed, tf.int64), tf.cast(global_step, tf.int64)])
        return private_gradient(
            self.engine,
            xb,
            yb,
            l2_clip=float(cfg.l2_clip),
            noise_multiplier=float(cfg.noise_multiplier),
            denominator=denominator,
            noise_seed=seed,
            segment_ids=segment_ids,
            num_segments=num_segments,
            mask=mask,
            dropout_mask=drop,
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
        """One epoch over an :class:`EpochPlan`; returns the summed loss and correct count."""
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


def _training_arrays(
    X: np.ndarray, y: np.ndarray, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Validated float32 copies: X (n, p) C-contiguous, y (n,)."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    y = np.asarray(y).astype(np.float32).ravel()
    if X.ndim != 2 or X.shape[0] != y.shape[0]:
        raise ValueError(f"X must be (n, p) and y (n,), got {X.shape} and {y.shape}")
    if batch_size > X.shape[0]:
        raise ValueError(f"batch_size {batch_size} exceeds the {X.shape[0]} training examples")
    return X, y


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
        X, y = _training_arrays(X, y, config.batch_size)
        self.n, n_features = X.shape
        if config.engine == TF_PRIVACY_ENGINE:
            raise ValueError(f"engine {TF_PRIVACY_ENGINE!r} runs under model.fit, not here")
        self.spec = spec
        self.config = config
        self.model = build_model(spec, n_features, seed=derive_seed(config.seed, _SEED_INIT))
        self.engine = make_engine(config.engine, self.model, spec, loss=config.loss)
        self._runner = _EpochRunner(self.engine, spec, config)
        # Resident for the whole run: each step gathers its rows inside the graph.
        self._X = tf.constant(X)
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
    """Train a target model with (DP-)SGD and the L1 proximal step; see the module docstring.

    ``history`` holds, per epoch, the running mean training loss (``config.loss``, with the
    step's dropout) and accuracy over the examples seen during the epoch (as Keras reports
    them) and, given validation data, the BCE from logits and accuracy on it after the epoch
    (no dropout).
    """
    if config.engine == TF_PRIVACY_ENGINE:
        X, y = _training_arrays(X, y, config.batch_size)
        return _train_with_tf_privacy(
            X, y, spec, config, X_val=X_val, y_val=y_val, progress=progress
        )

    started = time.perf_counter()
    trainer = EpochTrainer(X, y, spec, config)
    history = _empty_history()
    batch_sizes: list[np.ndarray] = []
    epoch_seconds: list[float] = []
    epochs = range(config.epochs)
    if progress:
        from tqdm import tqdm

        epochs = tqdm(epochs, desc=f"{spec.kind} {'DP' if config.dp else 'plain'}", leave=False)
    for epoch in epochs:
        stats = trainer.run_epoch(epoch)
        history["loss"].append(stats.loss)
        history["accuracy"].append(stats.accuracy)
        if X_val is not None and y_val is not None:
            val = evaluate(trainer.model, X_val, y_val)
            history["val_loss"].append(val["loss"])
            history["val_accuracy"].append(val["accuracy"])
        batch_sizes.append(stats.batch_sizes)
        epoch_seconds.append(stats.seconds)
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
    )


# --------------------------------------------------------------------------------------
# tensorflow-privacy's own optimizer under model.fit (benchmarking and cross-checking)


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


def _train_with_tf_privacy(
    X: np.ndarray,
    y: np.ndarray,
    spec: ModelSpec,
    config: TrainConfig,
    *,
    X_val: np.ndarray | None,
    y_val: np.ndarray | None,
    progress: bool,
) -> TrainResult:
    """``engine="tfp-keras"``: VectorizedDPKerasSGDOptimizer (or legacy SGD) under model.fit.

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
    tf.keras.utils.set_random_seed(derive_seed(config.seed, _SEED_TFP))
    model = build_model(spec, p, seed=derive_seed(config.seed, _SEED_INIT))
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
    history = _empty_history()
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
    """:func:`per_example_loss` as a Keras loss on (b, 1) labels and logits."""

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


# --------------------------------------------------------------------------------------
# Cross-validation


@dataclass
class CVResult:
    """Per-fold accuracies, sparsity, models and histories of one cross-validated setting.

    Standard deviations use ddof=1 (sample standard deviation across folds).
    """

    spec: ModelSpec
    config: TrainConfig
    train_accuracy: list[float]
    test_accuracy: list[float]
    sparsity: list[float]
    models: list[tf.keras.Model]
    histories: list[dict[str, list[float]]]
    seconds: list[float]
    fold_seeds: list[int]
    train_results: list[TrainResult]

    @staticmethod
    def _std(values: list[float]) -> float:
        return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")

    @property
    def mean_train_accuracy(self) -> float:
        """Mean training accuracy over folds."""
        return float(np.mean(self.train_accuracy))

    @property
    def std_train_accuracy(self) -> float:
        """Sample standard deviation (ddof=1) of training accuracy over folds."""
        return self._std(self.train_accuracy)

    @property
    def mean_test_accuracy(self) -> float:
        """Mean held-out accuracy over folds."""
        return float(np.mean(self.test_accuracy))

    @property
    def std_test_accuracy(self) -> float:
        """Sample standard deviation (ddof=1) of held-out accuracy over folds."""
        return self._std(self.test_accuracy)

    def summary(self) -> dict[str, Any]:
        """JSON-friendly summary (no models)."""
        return {
            "spec": self.spec.to_dict(),
            "config": self.config.to_dict(),
            "folds": len(self.test_accuracy),
            "train_accuracy": list(self.train_accuracy),
            "test_accuracy": list(self.test_accuracy),
            "mean_train_accuracy": self.mean_train_accuracy,
            "std_train_accuracy": self.std_train_accuracy,
            "mean_test_accuracy": self.mean_test_accuracy,
            "std_test_accuracy": self.std_test_accuracy,
            "std_ddof": 1,
            "sparsity": list(self.sparsity),
            "seconds": list(self.seconds),
            "fold_seeds": list(self.fold_seeds),
        }


def cross_validate(
    X: np.ndarray,
    y: np.ndarray,
    spec: ModelSpec,
    config: TrainConfig,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    progress: bool = True,
) -> CVResult:
    """Train one model per (train_idx, test_idx) fold; fold k uses a seed derived from (seed, k)."""
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y)
    results: list[TrainResult] = []
    train_acc: list[float] = []
    test_acc: list[float] = []
    fold_sparsity: list[float] = []
    fold_seeds: list[int] = []
    for fold, (train_idx, test_idx) in enumerate(folds):
        if np.intersect1d(train_idx, test_idx).size:
            raise ValueError(f"fold {fold}: train and test indices overlap")
        fold_config = replace(config, seed=derive_seed(config.seed, _SEED_FOLD, fold))
        result = train_model(
            X[train_idx],
            y[train_idx],
            spec,
            fold_config,
            X_val=X[test_idx],
            y_val=y[test_idx],
            progress=progress,
        )
        results.append(result)
        fold_seeds.append(fold_config.seed)
        train_acc.append(evaluate(result.model, X[train_idx], y[train_idx])["accuracy"])
        test_acc.append(evaluate(result.model, X[test_idx], y[test_idx])["accuracy"])
        fold_sparsity.append(sparsity(result.model))
        if progress:
            print(
                f"fold {fold}: train acc {train_acc[-1]:.4f}, test acc {test_acc[-1]:.4f}, "
                f"non-zero {fold_sparsity[-1]:.3f}, {result.seconds:.1f}s"
            )
    return CVResult(
        spec=spec,
        config=config,
        train_accuracy=train_acc,
        test_accuracy=test_acc,
        sparsity=fold_sparsity,
        models=[r.model for r in results],
        histories=[r.history for r in results],
        seconds=[r.seconds for r in results],
        fold_seeds=fold_seeds,
        train_results=results,
    )

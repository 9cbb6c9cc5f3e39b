"""What a gradient engine is given and returns, and the clipping every engine must reproduce.

An engine computes data-loss gradients of one model, nothing else: the trainer hands it a
:class:`StepBatch` and gets back the gradient of the mean loss (:meth:`~ClippedGradientEngine.
mean_grad`, plain SGD) or the sum of clipped microbatch gradients
(:meth:`~ClippedGradientEngine.clipped_grad_sum`, DP-SGD). Noise, the division by the number
of microbatches, the SGD update and the L1 proximal step live in :mod:`..dpsgd` and
:mod:`..loop`, shared by every engine, so engines cannot differ in privacy semantics.
:func:`clip_and_sum` is the clipping written out on explicit per-example gradients.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import tensorflow as tf

from dpmia_utils.models import ModelSpec, forward
from dpmia_utils.training.config import check_loss
from dpmia_utils.training.losses import per_example_loss


class StepBatch(NamedTuple):
    """One step's rows as an engine receives them (inside ``tf.function``).

    ``mask`` (float, 1 for a real example, 0 for padding) lets the trainer pad variable-size
    batches to a few fixed sizes (fewer distinct shapes run much faster on CPU); a padded
    example must contribute exactly nothing. ``None`` means every example is real.

    ``dropout_mask`` (from :func:`dpmia_utils.models.dropout_mask`, row ``i`` for example
    ``i``) is the training-time dropout of the batch; ``None`` means no dropout.

    ``segment_ids[i]`` in ``[0, num_segments)`` names the microbatch of example ``i``;
    ``segment_ids=None`` means every example is its own microbatch. Plain SGD ignores them.
    """

    x: tf.Tensor
    y: tf.Tensor
    mask: tf.Tensor | None = None
    dropout_mask: tf.Tensor | None = None
    segment_ids: tf.Tensor | None = None
    num_segments: tf.Tensor | int | None = None


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
    ``loss`` is the training loss (:data:`..config.LOSSES`), fixed when the engine is made.
    """

    name = "base"

    def __init__(self, model: tf.keras.Model, spec: ModelSpec, loss: str = "logits") -> None:
        check_loss(loss)
        self.model = model
        self.spec = spec
        self.loss = loss
        self.variables: list[tf.Variable] = list(model.trainable_variables)

    def logits(self, x: tf.Tensor, dropout_mask: tf.Tensor | None = None) -> tf.Tensor:
        """Training-mode logits of a batch with the given dropout mask, shape (b,)."""
        return forward(self.model, x, dropout_mask)

    def mean_grad(self, batch: StepBatch) -> BatchGradient:
        """Gradient of the mean loss over the real examples (non-DP); zero for an empty batch."""
        with tf.GradientTape() as tape:
            logits = self.logits(batch.x, batch.dropout_mask)
            losses = per_example_loss(batch.y, logits, self.loss)
            mask = tf.ones_like(losses) if batch.mask is None else batch.mask
            count = tf.maximum(tf.reduce_sum(mask), 1.0)
            mean_loss = tf.reduce_sum(mask * losses) / count
        grads = tape.gradient(mean_loss, self.variables, unconnected_gradients="zero")
        return BatchGradient(list(grads), losses, logits)

    def clipped_grad_sum(self, batch: StepBatch, l2_clip: float) -> ClippedGradSum:
        """Sum of microbatch gradients each clipped to ``l2_clip`` jointly over all variables.

        A microbatch's gradient is the gradient of the mean loss over ITS real examples.
        """
        raise NotImplementedError


def clip_and_sum(grads: Sequence[tf.Tensor], l2_clip: float, batch: StepBatch) -> list[tf.Tensor]:
    """Clip stacked per-example gradients (leading axis = example) per microbatch and sum.

    Padded examples (``batch.mask == 0``) are zeroed first. With ``batch.segment_ids``, the
    per-example gradients are then averaged over the real examples of each microbatch (the
    gradient of a microbatch's mean loss is the mean of its examples' gradients); empty
    microbatches are zero and contribute nothing. The scale is tensorflow-privacy's:
    ``1 / max(norm / clip, 1)``.
    """
    grads = list(grads)
    mask, segment_ids, num_segments = batch.mask, batch.segment_ids, batch.num_segments

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
    scale = 1.0 / tf.maximum(tf.sqrt(squared_norms) / l2_clip, 1.0)
    return [tf.tensordot(scale, g, axes=1) for g in grads]

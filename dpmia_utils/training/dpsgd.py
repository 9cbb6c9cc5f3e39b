"""The privacy mechanism of one DP-SGD step, shared by every engine, and the L1 proximal step.

Both training paths optimise the same objective, mean binary cross-entropy from logits plus
``l1 * sum |penalised kernel weights|`` (the penalised kernels are
:func:`dpmia_utils.models.kernel_variables`: the Lasso's dense kernel, the CNN's conv kernel).
One step:

1. Data gradient. Non-DP: the gradient of the mean loss over the batch. DP
   (:func:`private_gradient`): the batch is split into microbatches, the gradient of each
   microbatch's mean loss is clipped to L2 norm ``l2_clip`` over ALL trainable variables
   jointly, the clipped gradients are summed (by an engine), Gaussian noise
   ``N(0, (l2_clip * noise_multiplier)^2)`` is added to every coordinate of the sum, and the
   result is divided by the number of microbatches (shuffle, as tensorflow-privacy does) or
   by the EXPECTED number of microbatches ``batch_size / microbatch_size`` (Poisson: a
   data-independent denominator, which is what the Poisson-subsampled Gaussian accountant
   assumes).
2. SGD update ``w <- w - learning_rate * g``.
3. L1 proximal step (:func:`soft_threshold`) on the penalised kernels, never biases:
   ``w <- sign(w) * max(|w| - learning_rate * l1, 0)``. The L1 term is data-independent,
   so it is neither clipped nor noised and costs no privacy; applying it the same way in
   the non-DP path keeps the two paths optimising the same objective.

Microbatches: ``microbatch_fraction = 1.0`` makes every example its own microbatch; ``0.5``
makes microbatches of 2 examples (the paper's "50% of batch size"). With microbatches larger
than one, the L2 sensitivity of the clipped sum under add/remove-one adjacency is
``2 * l2_clip`` (tensorflow-privacy's ``used_microbatching=True``); the accountant must be
told (``TrainResult.microbatch_size``).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from dpmia_utils.training.engines.base import BatchGradient, ClippedGradientEngine, StepBatch
from dpmia_utils.training.noise import gaussian_noise


def private_gradient(
    engine: ClippedGradientEngine,
    batch: StepBatch,
    *,
    l2_clip: float,
    noise_multiplier: float,
    denominator: tf.Tensor | float,
    noise_seed: tf.Tensor,
) -> BatchGradient:
    """DP-SGD gradient: (sum of clipped microbatch gradients + N(0, (C*sigma)^2)) / denominator.

    ``noise_seed`` is a stateless seed (shape [2] int); one Gaussian vector covers all
    variables jointly. Noise is skipped entirely when ``noise_multiplier == 0``.
    """
    clipped = engine.clipped_grad_sum(batch, l2_clip)
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


def soft_threshold(weights: tf.Tensor, threshold: float) -> tf.Tensor:
    """Proximal operator of ``threshold * |w|``: ``sign(w) * max(|w| - threshold, 0)``."""
    return tf.sign(weights) * tf.nn.relu(tf.abs(weights) - threshold)

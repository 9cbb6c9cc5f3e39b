"""The "fast" DP-SGD engine: clipped sums of per-example gradients without forming them.

Both target models end in one dense unit on a feature vector ``a_i`` (the genotypes for the
Lasso; the flattened ReLU activations of the Conv1D layer for the CNN), with logit
``z_i = <w, a_i> + b`` and binary cross-entropy from logits, whose derivative with respect
to the logit is ``r_i = sigmoid(z_i) - y_i``. Hence, per example:

- dense kernel gradient ``r_i a_i`` and bias gradient ``r_i``, with squared norm
  ``r_i^2 (||a_i||^2 + 1)`` (the "ghost norm": no per-example gradient is formed);
- CNN only: with ``delta_i[t, f] = r_i w[t, f] 1[h_i[t, f] > 0]`` the gradient reaching the
  conv pre-activations, the conv kernel gradient is the correlation
  ``G_i[j, f] = sum_t x_i[t + j] delta_i[t, f]`` and the conv bias gradient
  ``sum_t delta_i[t, f]``. These are only ``(kernel_size + 1) x filters`` numbers per example,
  computed in one batched matmul of the input windows (a ``(b, kernel_size + 1, L)`` tensor,
  the last row all ones for the bias) with ``delta`` at about the cost of the forward conv.

The clipped sum ``sum_i s_i g_i`` with ``s_i = 1 / max(||g_i|| / C, 1)`` (tensorflow-privacy's
form, as :func:`dpmia_utils.training.clip_and_sum`) is then a set of weighted reductions:
``A^T (s * r)`` for the dense kernel, ``sum_i s_i G_i`` for the conv kernel.

Microbatches (``segment_ids``): a microbatch's gradient is the mean of its real examples'
gradients, so its norm needs cross terms. With ``P[j, i] = 1[seg_i = j] mask_i / n_j`` and
``Q = P diag(r)``, the dense kernel part of microbatch ``j`` has squared norm
``(Q K Q^T)_jj`` where ``K = A A^T`` is the batch's (b x b) Gram matrix, its bias part
``(sum_i Q_ji)^2``, and the small conv parts are summed explicitly (``P G``). The clipped sum
of the dense kernel is ``A^T (Q^T s)``. This is exact for any assignment of examples to
microbatches (shuffle: consecutive pairs; Poisson: random slots, possibly empty).

Only gradients are computed here: noise, the division by the (expected) number of
microbatches, the SGD update and the L1 proximal step stay in
:func:`dpmia_utils.training.private_gradient` and the trainer, shared with the reference
engine, so the privacy semantics are those of the reference by construction.
"""

from __future__ import annotations

import tensorflow as tf

from dpmia_utils.models import ModelSpec
from dpmia_utils.training import (
    BatchGradient,
    ClippedGradientEngine,
    ClippedGradSum,
    per_example_loss,
)


class FastEngine(ClippedGradientEngine):
    """Closed-form (Lasso) and ghost-norm + per-example-conv-rule (CNN) clipped gradient sums."""

    name = "fast"

    def __init__(self, model: tf.keras.Model, spec: ModelSpec) -> None:
        super().__init__(model, spec)
        self._check_architecture(model, spec)
        self.dense = model.get_layer("logit")
        self.conv = model.get_layer("conv") if spec.kind == "cnn" else None
        owned = [self.dense.kernel, self.dense.bias]
        if self.conv is not None:
            self._check_conv(self.conv)
            owned = [self.conv.kernel, self.conv.bias, *owned]
        if {v.ref() for v in owned} != {v.ref() for v in self.variables} or len(owned) != len(
            self.variables
        ):
            raise ValueError(f"engine 'fast' does not know the variables of model {model.name}")
        # Gradients must come back in the order of self.variables.
        position = {v.ref(): i for i, v in enumerate(owned)}
        self._order = [position[v.ref()] for v in self.variables]

    @staticmethod
    def _check_architecture(model: tf.keras.Model, spec: ModelSpec) -> None:
        """The gradients below are written for exactly the layers of ``models.build_model``."""
        layers = [type(layer).__name__ for layer in model.layers]
        expected = ["InputLayer", "Dense"]
        if spec.kind == "cnn":
            expected = ["InputLayer", "Reshape", "Conv1D", "Flatten", "Dense"]
        if layers != expected:
            raise ValueError(f"engine 'fast' needs layers {expected}, got {layers}")
        dense = model.layers[-1].get_config()
        if dense["units"] != 1 or dense["activation"] != "linear" or not dense["use_bias"]:
            raise ValueError("engine 'fast' needs a final Dense(1) with bias and no activation")

    @staticmethod
    def _check_conv(conv: tf.keras.layers.Layer) -> None:
        config = conv.get_config()
        expected = {
            "strides": (1,),
            "padding": "valid",
            "dilation_rate": (1,),
            "activation": "relu",
            "use_bias": True,
            "groups": 1,
        }
        for key, value in expected.items():
            got = config.get(key)
            got = tuple(got) if isinstance(got, list) else got
            if got != value:
                raise ValueError(f"engine 'fast' needs Conv1D {key}={value!r}, got {got!r}")

    # ---------------------------------------------------------------------------- forward

    def _features(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor | None]:
        """The dense layer's input ``A`` (b, d) and, for the CNN, the activations (b,1,L,F)."""
        if self.conv is None:
            return x, None
        # Conv2D -> BiasAdd -> Relu on 4-D tensors: grappler fuses these into one oneDNN op.
        hidden = tf.nn.conv2d(
            x[:, tf.newaxis, :, tf.newaxis],
            self.conv.kernel[tf.newaxis],
            strides=1,
            padding="VALID",
        )
        activations = tf.nn.relu(tf.nn.bias_add(hidden, self.conv.bias))
        return tf.reshape(activations, [tf.shape(x)[0], -1]), activations

    def _logits(self, features: tf.Tensor) -> tf.Tensor:
        return tf.nn.bias_add(tf.matmul(features, self.dense.kernel), self.dense.bias)[:, 0]

    def logits(self, x: tf.Tensor) -> tf.Tensor:
        """Logits of a batch, shape (b,)."""
        return self._logits(self._features(x)[0])

    def _conv_delta(self, weights: tf.Tensor, activations: tf.Tensor) -> tf.Tensor:
        """``weights_i * w[t, f] * 1[h_i[t, f] > 0]``: d(weighted logits)/d(pre-activations)."""
        upstream = tf.matmul(weights[:, tf.newaxis], self.dense.kernel, transpose_b=True)
        # ReluGrad masks by features > 0; relu(h) > 0 exactly where h > 0.
        return tf.raw_ops.ReluGrad(
            gradients=tf.reshape(upstream, tf.shape(activations)), features=activations
        )

    def _per_example_conv_grads(self, x: tf.Tensor, delta: tf.Tensor) -> tf.Tensor:
        """(b, kernel_size + 1, filters): each example's conv kernel rows, then its bias row."""
        kernel_size = int(self.conv.kernel.shape[0])
        length = int(delta.shape[2])
        windows = [x[:, j : j + length] for j in range(kernel_size)]
        windows.append(tf.ones_like(windows[0]))
        frames = tf.stack(windows, axis=1)  # (b, k + 1, L)
        return tf.matmul(frames, delta[:, 0])  # (b, L, F) contracted over L

    def _ordered(self, grads: list[tf.Tensor]) -> list[tf.Tensor]:
        return [grads[i] for i in self._order]

    # -------------------------------------------------------------------------- gradients

    def mean_grad(self, x: tf.Tensor, y: tf.Tensor, mask: tf.Tensor | None = None) -> BatchGradient:
        """Gradient of the mean loss over the real examples (non-DP); zero for an empty batch."""
        features, activations = self._features(x)
        logits = self._logits(features)
        losses = per_example_loss(y, logits)
        if mask is None:
            mask = tf.ones_like(losses)
        weights = mask * (tf.sigmoid(logits) - y) / tf.maximum(tf.reduce_sum(mask), 1.0)
        grads = [
            tf.matmul(features, weights[:, tf.newaxis], transpose_a=True),
            tf.reduce_sum(weights, keepdims=True),
        ]
        if activations is not None:
            delta = self._conv_delta(weights, activations)
            kernel = tf.compat.v1.nn.conv2d_backprop_filter(
                x[:, tf.newaxis, :, tf.newaxis],
                tf.shape(self.conv.kernel[tf.newaxis]),
                delta,
                strides=[1, 1, 1, 1],
                padding="VALID",
            )[0]
            grads = [kernel, tf.reduce_sum(delta, axis=[0, 1, 2]), *grads]
        return BatchGradient(self._ordered(grads), losses, logits)

    def clipped_grad_sum(
        self,
        x: tf.Tensor,
        y: tf.Tensor,
        l2_clip: float,
        segment_ids: tf.Tensor | None = None,
        num_segments: tf.Tensor | int | None = None,
        mask: tf.Tensor | None = None,
    ) -> ClippedGradSum:
        """Sum of microbatch gradients each clipped to ``l2_clip`` jointly over all variables."""
        features, activations = self._features(x)
        logits = self._logits(features)
        losses = per_example_loss(y, logits)
        residual = tf.sigmoid(logits) - y
        if mask is None:
            mask = tf.ones_like(residual)
        if segment_ids is None:
            grads = self._clipped_per_example(x, features, activations, residual * mask, l2_clip)
        else:
            grads = self._clipped_per_microbatch(
                x, features, activations, residual, mask, segment_ids, num_segments, l2_clip
            )
        return ClippedGradSum(self._ordered(grads), losses, logits)

    def _clipped_per_example(
        self,
        x: tf.Tensor,
        features: tf.Tensor,
        activations: tf.Tensor | None,
        residual: tf.Tensor,
        l2_clip: float,
    ) -> list[tf.Tensor]:
        """Every example its own microbatch; ``residual`` is already zero for padding."""
        # One fused reduction: reduce_sum(square(.)) makes an extra full-size temporary.
        feature_norms = tf.math.reduce_euclidean_norm(features, axis=1)
        squared_norms = tf.square(residual) * (tf.square(feature_norms) + 1.0)
        conv_grads = None
        if activations is not None:
            conv_grads = self._per_example_conv_grads(x, self._conv_delta(residual, activations))
            squared_norms += tf.reduce_sum(tf.square(conv_grads), axis=[1, 2])
        scale = 1.0 / tf.maximum(tf.sqrt(squared_norms) / l2_clip, 1.0)
        weights = scale * residual
        grads = [
            tf.matmul(features, weights[:, tf.newaxis], transpose_a=True),
            tf.reduce_sum(weights, keepdims=True),
        ]
        if conv_grads is not None:
            grads = [*self._split_conv(tf.tensordot(scale, conv_grads, axes=1)), *grads]
        return grads

    def _clipped_per_microbatch(
        self,
        x: tf.Tensor,
        features: tf.Tensor,
        activations: tf.Tensor | None,
        residual: tf.Tensor,
        mask: tf.Tensor,
        segment_ids: tf.Tensor,
        num_segments: tf.Tensor | int,
        l2_clip: float,
    ) -> list[tf.Tensor]:
        """Microbatch ``j`` = mean gradient of its real examples; norms via the Gram matrix."""
        membership = tf.transpose(tf.one_hot(segment_ids, num_segments, dtype=tf.float32))
        membership *= mask[tf.newaxis, :]
        counts = tf.maximum(tf.reduce_sum(membership, axis=1, keepdims=True), 1.0)
        averaging = membership / counts  # P: (segments, b)
        weighted = averaging * residual[tf.newaxis, :]  # Q = P diag(r)
        gram = tf.matmul(features, features, transpose_b=True)
        bias_grads = tf.reduce_sum(weighted, axis=1)
        squared_norms = tf.reduce_sum(tf.matmul(weighted, gram) * weighted, axis=1)
        squared_norms += tf.square(bias_grads)
        conv_grads = None
        if activations is not None:
            per_example = self._per_example_conv_grads(x, self._conv_delta(residual, activations))
            conv_grads = tf.tensordot(averaging, per_example, axes=1)  # (segments, k + 1, F)
            squared_norms += tf.reduce_sum(tf.square(conv_grads), axis=[1, 2])
        scale = 1.0 / tf.maximum(tf.sqrt(squared_norms) / l2_clip, 1.0)
        example_weights = tf.linalg.matvec(weighted, scale, transpose_a=True)  # Q^T s
        grads = [
            tf.matmul(features, example_weights[:, tf.newaxis], transpose_a=True),
            tf.reduce_sum(scale * bias_grads, keepdims=True),
        ]
        if conv_grads is not None:
            grads = [*self._split_conv(tf.tensordot(scale, conv_grads, axes=1)), *grads]
        return grads

    def _split_conv(self, summed: tf.Tensor) -> list[tf.Tensor]:
        """(k + 1, F) summed conv rows -> [kernel (k, 1, F), bias (F,)]."""
        kernel_size = int(self.conv.kernel.shape[0])
        return [summed[:kernel_size, tf.newaxis, :], summed[kernel_size]]

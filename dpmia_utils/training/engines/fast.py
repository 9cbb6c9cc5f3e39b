"""The "fast" DP-SGD engine: clipped sums of per-example gradients without forming them.

Both target models end in one dense unit on a feature vector ``a_i`` (the genotypes for the
Lasso; for the CNN the flattened, pooled ReLU activations after dropout), with logit
``z_i = <w, a_i> + b``. ``r_i = d loss_i / d z_i`` is the residual of the configured loss
(:func:`dpmia_utils.training.losses.loss_gradient`: ``sigmoid(z_i) - y_i`` for BCE from
logits). Hence, per example:

- dense kernel gradient ``r_i a_i`` and bias gradient ``r_i``, with squared norm
  ``r_i^2 (||a_i||^2 + 1)`` (the "ghost norm": no per-example gradient is formed);
- CNN only (the authors' model, see :mod:`dpmia_utils.models`): the input is the one-hot
  ``u_i[t, c]`` (``u_i[t, 1] = (1 + x_i[t]) / 2``, ``u_i[t, 0] = (1 - x_i[t]) / 2``), the conv
  ("same" padding: ``pl = (k - 1) // 2`` zeros on the left, ``k - 1 - pl`` on the right, as
  Keras) gives pre-activations ``h_i[t, f]``, then ReLU, average pooling by 2 over the first
  ``2 P`` positions (``P = floor(p / 2)``), a dropout mask ``m_i[s, f]`` (already scaled by
  ``1 / (1 - rate)``), flatten. The gradient reaching the pre-activations is
  ``delta_i[t, f] = 0.5 r_i w[t // 2, f] m_i[t // 2, f] 1[h_i[t, f] > 0]`` for ``t < 2P``,
  zero beyond. The conv kernel gradient is the correlation
  ``G_i[j, c, f] = sum_t u_i[t + j - pl, c] delta_i[t, f]`` (u is zero in the padding) and
  the conv bias gradient ``S_i[f] = sum_t delta_i[t, f]``. As ``u[., 0] + u[., 1]`` is 1
  inside the sequence and 0 in the padding, only the ``x`` channel needs a full correlation:
  ``X_i[j, f] = sum_t x_i[t + j - pl] delta_i[t, f]`` and ``S_i`` come from one batched
  matmul of the input windows (a ``(b, k + 1, p)`` tensor, the last row all ones) with
  ``delta``; ``I_i[j, f] = S_i[f] - (delta summed over the t whose window position j falls
  in the padding)`` needs only the first and last few positions of ``delta``; and
  ``G_i[j, 1] = (I_i[j] + X_i[j]) / 2``, ``G_i[j, 0] = (I_i[j] - X_i[j]) / 2``. These are
  ``(2 k + 1) x filters`` numbers per example, at about the cost of the forward conv.

Dropout: the engine never draws a mask; it applies the one the trainer passes (the same one
the reference engine feeds to :func:`dpmia_utils.models.forward`), in the forward pass and
in ``delta``.

The clipped sum ``sum_i s_i g_i`` with ``s_i = 1 / max(||g_i|| / C, 1)`` (tensorflow-privacy's
form, as :func:`dpmia_utils.training.engines.base.clip_and_sum`) is then a set of weighted
reductions: ``A^T (s * r)`` for the dense kernel, ``sum_i s_i G_i`` for the conv kernel.

Microbatches (``segment_ids``): a microbatch's gradient is the mean of its real examples'
gradients, so its norm needs cross terms. With ``P[j, i] = 1[seg_i = j] mask_i / n_j`` and
``Q = P diag(r)``, the dense kernel part of microbatch ``j`` has squared norm
``(Q K Q^T)_jj`` where ``K = A A^T`` is the batch's (b x b) Gram matrix, its bias part
``(sum_i Q_ji)^2``, and the small conv parts are summed explicitly (``P G``). The clipped sum
of the dense kernel is ``A^T (Q^T s)``. This is exact for any assignment of examples to
microbatches (shuffle: consecutive pairs; Poisson: random slots, possibly empty).

Only gradients are computed here: noise, the division by the (expected) number of
microbatches, the SGD update and the L1 proximal step stay in
:func:`dpmia_utils.training.dpsgd.private_gradient` and the trainer, shared with the
reference engine, so the privacy semantics are those of the reference by construction.
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

from dpmia_utils.models import ModelSpec, cnn_activations, cnn_pooled
from dpmia_utils.training.engines.base import (
    BatchGradient,
    ClippedGradientEngine,
    ClippedGradSum,
    StepBatch,
)
from dpmia_utils.training.losses import loss_gradient, per_example_loss

#: The layer types of ``models.build_model``'s CNN, input to output.
_CNN_LAYERS = [
    "InputLayer",
    "GenotypeOneHot",
    "Conv1D",
    "AveragePooling1D",
    "Dropout",
    "Flatten",
    "Dense",
]


class _Forward(NamedTuple):
    """A batch's forward pass with what every gradient below starts from."""

    features: tf.Tensor  # A: the dense layer's input (b, d)
    activations: tf.Tensor | None  # CNN: the conv's ReLU activations (b, 1, p, F)
    logits: tf.Tensor
    losses: tf.Tensor
    residual: tf.Tensor  # r_i = d loss_i / d z_i
    mask: tf.Tensor  # 1 for a real example, 0 for padding


class FastEngine(ClippedGradientEngine):
    """Closed-form (Lasso) and ghost-norm + per-example-conv-rule (CNN) clipped gradient sums."""

    name = "fast"

    def __init__(self, model: tf.keras.Model, spec: ModelSpec, loss: str = "logits") -> None:
        super().__init__(model, spec, loss)
        self._check_architecture(model, spec)
        self.dense = model.get_layer("logit")
        self.conv = model.get_layer("conv") if spec.kind == "cnn" else None
        owned = [self.dense.kernel, self.dense.bias]
        if self.conv is not None:
            self._check_conv(self.conv)
            self._check_pool(model.get_layer("pool"))
            owned = [self.conv.kernel, self.conv.bias, *owned]
            self.kernel_size, channels, self.filters = (int(d) for d in self.conv.kernel.shape)
            if channels != 2:
                raise ValueError(f"engine 'fast' needs a 2-channel one-hot input, got {channels}")
            self.length = int(model.inputs[0].shape[1])
            self.pooled = self.length // 2
            # Keras "same" padding (as TF's SAME): the extra zero of an even kernel goes right.
            self.pad_left = (self.kernel_size - 1) // 2
            self.pad_right = self.kernel_size - 1 - self.pad_left
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
        expected = _CNN_LAYERS if spec.kind == "cnn" else ["InputLayer", "Dense"]
        if layers != expected:
            raise ValueError(f"engine 'fast' needs layers {expected}, got {layers}")
        dense = model.layers[-1].get_config()
        if dense["units"] != 1 or dense["activation"] != "linear" or not dense["use_bias"]:
            raise ValueError("engine 'fast' needs a final Dense(1) with bias and no activation")

    @staticmethod
    def _check_settings(layer: tf.keras.layers.Layer, expected: dict) -> None:
        config = layer.get_config()
        for key, value in expected.items():
            got = config.get(key)
            got = tuple(got) if isinstance(got, list) else got
            if got != value:
                kind = type(layer).__name__
                raise ValueError(f"engine 'fast' needs {kind} {key}={value!r}, got {got!r}")

    @classmethod
    def _check_conv(cls, conv: tf.keras.layers.Layer) -> None:
        expected = {
            "strides": (1,),
            "padding": "same",
            "dilation_rate": (1,),
            "activation": "relu",
            "use_bias": True,
            "groups": 1,
            "data_format": "channels_last",
        }
        cls._check_settings(conv, expected)

    @classmethod
    def _check_pool(cls, pool: tf.keras.layers.Layer) -> None:
        expected = {
            "pool_size": (2,),
            "strides": (2,),
            "padding": "valid",
            "data_format": "channels_last",
        }
        cls._check_settings(pool, expected)

    # ---------------------------------------------------------------------------- forward

    def _features(
        self, x: tf.Tensor, dropout_mask: tf.Tensor | None = None
    ) -> tuple[tf.Tensor, tf.Tensor | None]:
        """The dense layer's input ``A`` (b, d) and, for the CNN, the activations (b,1,p,F)."""
        if self.conv is None:
            return x, None
        activations = cnn_activations(x, self.conv.kernel, self.conv.bias, self.length)
        return cnn_pooled(activations, dropout_mask), activations

    def _logits(self, features: tf.Tensor) -> tf.Tensor:
        return tf.nn.bias_add(tf.matmul(features, self.dense.kernel), self.dense.bias)[:, 0]

    def logits(self, x: tf.Tensor, dropout_mask: tf.Tensor | None = None) -> tf.Tensor:
        """Training-mode logits of a batch with the given dropout mask, shape (b,)."""
        return self._logits(self._features(x, dropout_mask)[0])

    def _conv_delta(
        self, weights: tf.Tensor, activations: tf.Tensor, dropout_mask: tf.Tensor | None
    ) -> tf.Tensor:
        """``d(sum_i weights_i z_i) / d h``: (b, 1, p, F), zero beyond the pooled positions."""
        upstream = tf.matmul(weights[:, tf.newaxis], self.dense.kernel, transpose_b=True)
        upstream = tf.reshape(upstream, [-1, 1, self.pooled, self.filters])
        if dropout_mask is not None:
            upstream *= dropout_mask[:, tf.newaxis]
        # Average pooling's gradient (the op Keras's gradient runs): half of each pooled
        # gradient to each of its 2 positions, zero at the last position of an odd length.
        spread = tf.raw_ops.AvgPoolGrad(
            orig_input_shape=tf.shape(activations),
            grad=upstream,
            ksize=[1, 1, 2, 1],
            strides=[1, 1, 2, 1],
            padding="VALID",
        )
        # ReluGrad masks by features > 0; relu(h) > 0 exactly where h > 0.
        return tf.raw_ops.ReluGrad(gradients=spread, features=activations)

    def _conv_grads(self, x: tf.Tensor, delta: tf.Tensor, per_example: bool) -> tf.Tensor:
        """Conv kernel rows ``(j, c)`` then the bias row: (b, 2k + 1, F), or summed (2k + 1, F).

        See the module docstring: the correlation of the ``x`` windows with ``delta`` gives
        ``X`` (per example: one batched matmul, with a ones row giving ``S``; summed over
        the batch: one 1-channel filter-gradient op, measured 4x faster than the matmul), and
        the padding corrections use only the edges of ``delta``.
        """
        k, left, right, p = self.kernel_size, self.pad_left, self.pad_right, self.length
        if per_example:
            padded = tf.pad(x, [[0, 0], [left, right]])
            windows = [padded[:, j : j + p] for j in range(k)]
            windows.append(tf.ones_like(x))
            sums = tf.matmul(tf.stack(windows, axis=1), delta[:, 0])  # (b, k + 1, F)
            cross, total = sums[:, :k], sums[:, k]
        else:
            cross = tf.compat.v1.nn.conv2d_backprop_filter(
                x[:, tf.newaxis, :, tf.newaxis],
                [1, k, 1, self.filters],
                delta,
                strides=[1, 1, 1, 1],
                padding="SAME",
            )[0, :, 0, :]  # (k, F)
            total = tf.reduce_sum(delta, axis=[0, 1, 2])
        # head[m] = sum_{t <= m} delta[t]; tail[m] = sum_{t >= p - right + m} delta[t].
        head = tf.cumsum(delta[:, 0, :left], axis=1)
        tail = tf.cumsum(delta[:, 0, p - right :], axis=1, reverse=True)
        if not per_example:
            head, tail = tf.reduce_sum(head, axis=0), tf.reduce_sum(tail, axis=0)
        outside = []
        for j in range(k):
            if j < left:  # window position j reads padding for t < left - j ...
                outside.append(head[..., left - j - 1, :])
            elif j > left:  # ... and for the last j - left positions t
                outside.append(tail[..., right - (j - left), :])
            else:
                outside.append(tf.zeros_like(total))
        inside = total[..., tf.newaxis, :] - tf.stack(outside, axis=-2)  # (..., k, F)
        kernel = tf.stack([(inside - cross) * 0.5, (inside + cross) * 0.5], axis=-2)
        kernel = tf.reshape(kernel, tf.concat([tf.shape(total)[:-1], [2 * k, self.filters]], 0))
        return tf.concat([kernel, total[..., tf.newaxis, :]], axis=-2)

    def _forward(self, batch: StepBatch) -> _Forward:
        """The forward pass, each example's loss and residual, and the real-row mask."""
        features, activations = self._features(batch.x, batch.dropout_mask)
        logits = self._logits(features)
        residual = loss_gradient(batch.y, logits, self.loss)
        mask = tf.ones_like(residual) if batch.mask is None else batch.mask
        losses = per_example_loss(batch.y, logits, self.loss)
        return _Forward(features, activations, logits, losses, residual, mask)

    @staticmethod
    def _dense_grads(features: tf.Tensor, weights: tf.Tensor) -> list[tf.Tensor]:
        """Dense kernel and bias gradients of ``sum_i weights_i z_i``."""
        return [
            tf.matmul(features, weights[:, tf.newaxis], transpose_a=True),
            tf.reduce_sum(weights, keepdims=True),
        ]

    def _gradients(self, conv_rows: tf.Tensor | None, dense: list[tf.Tensor]) -> list[tf.Tensor]:
        """Summed conv rows (CNN) and dense gradients, in the order of ``self.variables``."""
        grads = dense if conv_rows is None else [*self._split_conv(conv_rows), *dense]
        return [grads[i] for i in self._order]

    # -------------------------------------------------------------------------- gradients

    def mean_grad(self, batch: StepBatch) -> BatchGradient:
        """Gradient of the mean loss over the real examples (non-DP); zero for an empty batch."""
        f = self._forward(batch)
        weights = f.mask * f.residual / tf.maximum(tf.reduce_sum(f.mask), 1.0)
        conv_rows = None
        if f.activations is not None:
            delta = self._conv_delta(weights, f.activations, batch.dropout_mask)
            conv_rows = self._conv_grads(batch.x, delta, per_example=False)
        grads = self._gradients(conv_rows, self._dense_grads(f.features, weights))
        return BatchGradient(grads, f.losses, f.logits)

    def clipped_grad_sum(self, batch: StepBatch, l2_clip: float) -> ClippedGradSum:
        """Sum of microbatch gradients each clipped to ``l2_clip`` jointly over all variables."""
        f = self._forward(batch)
        if batch.segment_ids is None:
            grads = self._clipped_per_example(batch, f, l2_clip)
        else:
            grads = self._clipped_per_microbatch(batch, f, l2_clip)
        return ClippedGradSum(grads, f.losses, f.logits)

    def _clipped_per_example(
        self, batch: StepBatch, f: _Forward, l2_clip: float
    ) -> list[tf.Tensor]:
        """Every example its own microbatch; padding rows get a zero residual."""
        residual = f.residual * f.mask
        # One fused reduction: reduce_sum(square(.)) makes an extra full-size temporary.
        feature_norms = tf.math.reduce_euclidean_norm(f.features, axis=1)
        squared_norms = tf.square(residual) * (tf.square(feature_norms) + 1.0)
        conv_grads = None
        if f.activations is not None:
            delta = self._conv_delta(residual, f.activations, batch.dropout_mask)
            conv_grads = self._conv_grads(batch.x, delta, per_example=True)
            squared_norms += tf.reduce_sum(tf.square(conv_grads), axis=[1, 2])
        scale = 1.0 / tf.maximum(tf.sqrt(squared_norms) / l2_clip, 1.0)
        conv_rows = None if conv_grads is None else tf.tensordot(scale, conv_grads, axes=1)
        return self._gradients(conv_rows, self._dense_grads(f.features, scale * residual))

    def _clipped_per_microbatch(
        self, batch: StepBatch, f: _Forward, l2_clip: float
    ) -> list[tf.Tensor]:
        """Microbatch ``j`` = mean gradient of its real examples; norms via the Gram matrix."""
        one_hot = tf.one_hot(batch.segment_ids, batch.num_segments, dtype=tf.float32)
        membership = tf.transpose(one_hot)
        membership *= f.mask[tf.newaxis, :]
        counts = tf.maximum(tf.reduce_sum(membership, axis=1, keepdims=True), 1.0)
        averaging = membership / counts  # P: (segments, b)
        weighted = averaging * f.residual[tf.newaxis, :]  # Q = P diag(r)
        gram = tf.matmul(f.features, f.features, transpose_b=True)
        bias_grads = tf.reduce_sum(weighted, axis=1)
        squared_norms = tf.reduce_sum(tf.matmul(weighted, gram) * weighted, axis=1)
        squared_norms += tf.square(bias_grads)
        conv_grads = None
        if f.activations is not None:
            delta = self._conv_delta(f.residual, f.activations, batch.dropout_mask)
            per_example = self._conv_grads(batch.x, delta, per_example=True)
            conv_grads = tf.tensordot(averaging, per_example, axes=1)  # (segments, 2k + 1, F)
            squared_norms += tf.reduce_sum(tf.square(conv_grads), axis=[1, 2])
        scale = 1.0 / tf.maximum(tf.sqrt(squared_norms) / l2_clip, 1.0)
        example_weights = tf.linalg.matvec(weighted, scale, transpose_a=True)  # Q^T s
        dense = [
            tf.matmul(f.features, example_weights[:, tf.newaxis], transpose_a=True),
            tf.reduce_sum(scale * bias_grads, keepdims=True),
        ]
        conv_rows = None if conv_grads is None else tf.tensordot(scale, conv_grads, axes=1)
        return self._gradients(conv_rows, dense)

    def _split_conv(self, summed: tf.Tensor) -> list[tf.Tensor]:
        """(2k + 1, F) summed conv rows -> [kernel (k, 2, F), bias (F,)]."""
        k = self.kernel_size
        return [tf.reshape(summed[: 2 * k], [k, 2, self.filters]), summed[2 * k]]

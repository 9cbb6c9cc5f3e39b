"""Target models: an L1-penalised logistic regression ("Lasso") and the authors' 1-D CNN.

The Lasso is one dense unit on the +-1 genotypes. The CNN is the architecture of the paper's
code (``CNN-dp.py``): the genotypes one-hot encoded in two channels (channel 0 = 1[g == -1],
channel 1 = 1[g == +1], built inside the model from the +-1 input as ``(1 - x) / 2`` and
``(1 + x) / 2``), Conv1D with "same" padding and ReLU, average pooling by 2, dropout,
flatten, and one dense unit. The L1 penalty applies to the Lasso's dense kernel and to the
CNN's conv kernel only (the authors regularised the conv kernel, not the dense layer):
:func:`kernel_variables` returns exactly the penalised kernels.

Both models output ONE LOGIT per example; there is no sigmoid in the graph (the paper's code
applied a from-logits loss to a sigmoid output; :mod:`dpmia_utils.training.losses` offers that
only as a labelled ablation). The L1 penalty is not a Keras regularizer: it is data-independent,
so the trainer applies it as a proximal (soft-thresholding) step after the possibly noisy
gradient step (see :mod:`dpmia_utils.training.dpsgd`). ``l1_penalty`` exists to report the
penalised objective.

Dropout: the Keras model keeps a ``Dropout`` layer, so ``model(x, training=False)`` (and
:func:`predict_logits`) never drops anything. The training engines do not use Keras's
stateful dropout: they call :func:`forward` with an explicit mask from :func:`dropout_mask`,
a pure function of a stateless seed, so every engine applies the same mask to an example.

Setting ``DPMIA_TF_THREADS=N`` in the environment before this module is imported pins
TensorFlow's intra- and inter-op thread pools to ``N``; otherwise TensorFlow's defaults are
kept. On a 2-core machine more threads than cores do not help.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import tensorflow as tf

from dpmia_utils import seeds

ModelKind = Literal["lasso", "cnn"]
MODEL_KINDS: tuple[str, ...] = ("lasso", "cnn")

#: Environment variable that sets TensorFlow's intra/inter-op thread counts at import.
THREADS_ENV_VAR = "DPMIA_TF_THREADS"

#: The seed tag of the layer initialisers' stream (:func:`dpmia_utils.seeds.derive_many`).
_SEED_LAYERS = 0x6D6F64


def configure_threads_from_env() -> int | None:
    """Set TF intra/inter-op threads from ``$DPMIA_TF_THREADS``; return the count or None."""
    value = os.environ.get(THREADS_ENV_VAR, "").strip()
    if not value:
        return None
    threads = int(value)
    if threads < 1:
        raise ValueError(f"{THREADS_ENV_VAR} must be a positive integer, got {value!r}")
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        # The TF runtime was already initialised by an earlier import; the setting can no
        # longer change, so keep whatever is in force rather than failing the import.
        return None
    return threads


configure_threads_from_env()


@dataclass(frozen=True)
class ModelSpec:
    """What defines a target model: its kind, L1 strength and (CNN only) kernels and dropout."""

    kind: ModelKind
    l1: float = 0.0
    n_kernels: int = 16
    kernel_size: int = 9
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"kind must be one of {MODEL_KINDS}, got {self.kind!r}")
        if self.l1 < 0:
            raise ValueError(f"l1 must be >= 0, got {self.l1}")
        if self.n_kernels < 1 or self.kernel_size < 1:
            raise ValueError("n_kernels and kernel_size must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.kind == "lasso" and self.dropout != 0.0:
            raise ValueError("the Lasso has no dropout layer: dropout must be 0")

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form for records and hashing."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        """Rebuild a spec from :meth:`to_dict` output; unknown keys are an error."""
        unknown = set(data) - {"kind", "l1", "n_kernels", "kernel_size", "dropout"}
        if unknown:
            raise ValueError(f"unknown ModelSpec keys: {sorted(unknown)}")
        return cls(
            kind=data["kind"],
            l1=float(data.get("l1", 0.0)),
            n_kernels=int(data.get("n_kernels", 16)),
            kernel_size=int(data.get("kernel_size", 9)),
            dropout=float(data.get("dropout", 0.0)),
        )


@tf.keras.utils.register_keras_serializable(package="dpmia")
class GenotypeOneHot(tf.keras.layers.Layer):
    """+-1 genotypes (b, p) -> one-hot (b, p, 2): ``[(1 - x) / 2, (1 + x) / 2]`` per position.

    Channel 0 is 1[g == -1] and channel 1 is 1[g == +1], which is what the authors'
    ``to_categorical`` made of their 0/1 genotype file (-1 recoded to 0).
    """

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        """Stack the two indicator channels on a new last axis."""
        return tf.stack([(1.0 - inputs) * 0.5, (1.0 + inputs) * 0.5], axis=-1)


#: The CNN's layers as ``build_model`` names them, input to output (after the InputLayer).
CNN_LAYER_NAMES: tuple[str, ...] = ("one_hot", "conv", "pool", "dropout", "flatten", "logit")


def _logit_layer(seed: int) -> tf.keras.layers.Dense:
    """The final dense unit (one logit), Glorot-uniform kernel fixed by ``seed``, zero bias."""
    return tf.keras.layers.Dense(
        1,
        kernel_initializer=tf.keras.initializers.GlorotUniform(seed=seed),
        bias_initializer="zeros",
        name="logit",
    )


def build_model(spec: ModelSpec, n_features: int, seed: int) -> tf.keras.Model:
    """Build the target model (one logit per example) with initial weights fixed by ``seed``.

    CNN: one-hot (2 channels) -> Conv1D("same", ReLU) -> AveragePooling1D(2) -> Dropout ->
    Flatten -> Dense(1), as the authors' code. :mod:`dpmia_utils.training.engines.fast` computes
    gradients of this architecture by hand: it finds the layers by their names
    (:data:`CNN_LAYER_NAMES`) and checks their settings.
    """
    if n_features < 1:
        raise ValueError("n_features must be positive")
    inputs = tf.keras.Input(shape=(n_features,), dtype=tf.float32, name="genotypes")
    if spec.kind == "lasso":
        (dense_seed,) = seeds.derive_many(seed, 1, _SEED_LAYERS)
        logit = _logit_layer(dense_seed)(inputs)
    else:
        if spec.kernel_size > n_features:
            raise ValueError("kernel_size is larger than the number of features")
        if n_features < 2:
            raise ValueError("the CNN pools pairs of positions: it needs at least 2 features")
        conv_seed, dense_seed = seeds.derive_many(seed, 2, _SEED_LAYERS)
        hidden = GenotypeOneHot(name="one_hot")(inputs)
        hidden = tf.keras.layers.Conv1D(
            spec.n_kernels,
            spec.kernel_size,
            strides=1,
            padding="same",
            activation="relu",
            kernel_initializer=tf.keras.initializers.GlorotUniform(seed=conv_seed),
            bias_initializer="zeros",
            name="conv",
        )(hidden)
        hidden = tf.keras.layers.AveragePooling1D(pool_size=2, name="pool")(hidden)
        hidden = tf.keras.layers.Dropout(spec.dropout, name="dropout")(hidden)
        hidden = tf.keras.layers.Flatten(name="flatten")(hidden)
        logit = _logit_layer(dense_seed)(hidden)
    return tf.keras.Model(inputs=inputs, outputs=logit, name=f"{spec.kind}_target")


def _is_cnn(model: tf.keras.Model) -> bool:
    return any(layer.name == "conv" for layer in model.layers)


def kernel_variables(model: tf.keras.Model) -> list[tf.Variable]:
    """The kernels the L1 penalty applies to: the CNN's conv kernel, or the Lasso's dense kernel.

    Biases are never penalised, nor is the CNN's dense layer (as in the authors' code).
    """
    if _is_cnn(model):
        return [model.get_layer("conv").kernel]
    return [layer.kernel for layer in model.layers if getattr(layer, "kernel", None) is not None]


def dropout_rate(model: tf.keras.Model) -> float:
    """The rate of the model's Dropout layer (0.0 for the Lasso, which has none)."""
    if not _is_cnn(model):
        return 0.0
    return float(model.get_layer("dropout").rate)


def _dropout_threshold(rate: float) -> tuple[int, int]:
    """(bits, threshold): drop where a uniform ``bits``-bit integer is below ``threshold``.

    The fewest random bits (8, 16 or 32) for which ``rate * 2**bits`` is a whole number, so
    the drop probability is exactly ``rate`` (0.25 and 0.5 need one byte per mask entry);
    other rates use 32 bits, within 2^-33 of ``rate``.
    """
    for bits in (8, 16):
        threshold = rate * 2**bits
        if threshold == int(threshold):
            return bits, int(threshold)
    return 32, round(rate * 2**32)


def dropout_mask(model: tf.keras.Model, batch_size: tf.Tensor | int, seed: tf.Tensor) -> Any:
    """A training-time dropout mask for a batch, a pure function of the stateless ``seed``.

    Shape (batch, pooled positions, kernels), the Dropout layer's input; values
    ``1 / (1 - rate)`` (kept, with probability ``1 - rate``) or 0 (dropped), so
    ``activations * mask`` is Keras's inverted dropout. Row ``i`` is the mask of the batch's
    ``i``-th example whatever computes the gradient. ``None`` when the rate is 0.

    Each entry is drawn from Philox random bits (``tf.random.stateless_uniform`` on uint32,
    split into bytes or 16-bit halves when that is exact, see :func:`_dropout_threshold`):
    for the paper's rates this needs a quarter of the random numbers of a float uniform per
    entry, which was measured 3x faster (Philox dominated the cost of a step).
    """
    rate = dropout_rate(model)
    if rate == 0.0:
        return None
    _, positions, channels = model.get_layer("dropout").input_shape
    bits, threshold = _dropout_threshold(rate)
    count = tf.cast(batch_size, tf.int32) * (positions * channels)
    per_word = 32 // bits
    words = tf.random.stateless_uniform(
        [(count + per_word - 1) // per_word], seed=seed, minval=None, maxval=None, dtype=tf.uint32
    )
    if bits < 32:
        words = tf.reshape(tf.bitcast(words, tf.uint8 if bits == 8 else tf.uint16), [-1])
    kept = words[:count] >= tf.constant(threshold, words.dtype)
    mask = tf.cast(kept, tf.float32) * (1.0 / (1.0 - rate))
    return tf.reshape(mask, tf.stack([tf.cast(batch_size, tf.int32), positions, channels]))


def forward(model: tf.keras.Model, x: tf.Tensor, dropout_mask: tf.Tensor | None = None) -> Any:
    """The logits (b,) computed from the model's variables, with an explicit dropout mask.

    ``dropout_mask=None`` is inference (no dropout), the same as ``model(x, training=False)``;
    a mask from :func:`dropout_mask` gives the training-mode logits. Differentiable, and
    traceable inside ``tf.vectorized_map`` (one example at a time).
    """
    if not _is_cnn(model):
        return model.get_layer("logit")(x)[:, 0]
    hidden = x
    for name in CNN_LAYER_NAMES:
        if name == "dropout":
            if dropout_mask is not None:
                hidden = hidden * dropout_mask
            continue
        hidden = model.get_layer(name)(hidden)
    return hidden[:, 0]


def l1_penalty(model: tf.keras.Model, l1: float) -> float:
    """The L1 term ``l1 * sum |kernel weights|`` of the objective (biases excluded)."""
    total = sum(float(tf.reduce_sum(tf.abs(k))) for k in kernel_variables(model))
    return float(l1) * total


def cnn_activations(x: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor, length: int) -> tf.Tensor:
    """The CNN's conv ReLU activations (b, 1, p, F) of +-1 genotypes ``x`` (b, p).

    Bit for bit what the Keras layers compute (one-hot, Conv1D "same", ReLU), faster: the
    one-hot ``[(1 - x) / 2, (1 + x) / 2]`` is a rank-1 matmul plus bias (both round the exact
    value once), measured 5x faster than stacking the two channels, which dominated the
    forward pass; Conv2D -> BiasAdd -> Relu on 4-D tensors is fused by grappler into one
    oneDNN op.
    """
    slope, offset = tf.constant([[-0.5, 0.5]]), tf.constant([0.5, 0.5])
    one_hot = tf.nn.bias_add(tf.matmul(tf.reshape(x, [-1, 1]), slope), offset)
    one_hot = tf.reshape(one_hot, [tf.shape(x)[0], length, 2])
    hidden = tf.nn.conv2d(one_hot[:, tf.newaxis], kernel[tf.newaxis], strides=1, padding="SAME")
    return tf.nn.relu(tf.nn.bias_add(hidden, bias))


def cnn_pooled(activations: tf.Tensor, dropout_mask: tf.Tensor | None = None) -> tf.Tensor:
    """The dense layer's input (b, d): activations pooled by 2, masked, flattened."""
    # The op Keras's AveragePooling1D runs; VALID drops the last position of an odd p.
    pooled = tf.nn.avg_pool2d(activations, ksize=[1, 2], strides=[1, 2], padding="VALID")
    if dropout_mask is not None:
        pooled = pooled * dropout_mask[:, tf.newaxis]
    return tf.reshape(pooled, [tf.shape(activations)[0], -1])


def _compiled_forward(model: tf.keras.Model) -> Any:
    """The model's inference pass as one traced ``tf.function``, built once per model.

    Eager Keras calls on 512-row chunks materialise the CNN's (512, L, filters) activations
    (462 MB on the real data); a compiled pass over small chunks keeps them in cache and was
    measured 4x faster (0.15 s against 0.59 s for 713 rows of the 8x5 CNN, one thread). The
    CNN's pass is :func:`cnn_activations` (the training engine's), equal to the Keras
    layers' to the bit and 2.5-3x faster again: 0.09-0.14 s against 0.27-0.29 s for 376 rows,
    the held-out fold every CV epoch scores.
    """
    forward = getattr(model, "_dpmia_forward", None)
    if forward is None:
        length = int(model.inputs[0].shape[1])
        signature = [tf.TensorSpec([None, length], tf.float32)]
        if _is_cnn(model):
            conv, dense = model.get_layer("conv"), model.get_layer("logit")

            def logits(x: tf.Tensor) -> tf.Tensor:
                features = cnn_pooled(cnn_activations(x, conv.kernel, conv.bias, length))
                return tf.nn.bias_add(tf.matmul(features, dense.kernel), dense.bias)[:, 0]

        else:

            def logits(x: tf.Tensor) -> tf.Tensor:
                return model(x, training=False)[:, 0]

        forward = tf.function(logits, input_signature=signature)
        # Traced here, not in a call: tf.function's retracing detector would otherwise warn
        # once a few models (CV folds, shadow models) had each traced their own pass.
        forward.get_concrete_function()
        model._dpmia_forward = forward
    return forward


def predict_logits(model: tf.keras.Model, X: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """The model's logits for each row of ``X`` as a float64 array of shape (n,)."""
    X = np.asarray(X, dtype=np.float32)
    if X.shape[0] == 0:
        return np.zeros(0, dtype=np.float64)
    forward = _compiled_forward(model)
    chunks = [
        forward(X[start : start + batch_size]).numpy() for start in range(0, X.shape[0], batch_size)
    ]
    return np.concatenate(chunks).astype(np.float64)


def predict_proba(model: tf.keras.Model, X: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """P(y = 1 | x) for each row of ``X``: the sigmoid of the logits, shape (n,)."""
    logits = predict_logits(model, X, batch_size=batch_size)
    # Numerically stable sigmoid for large |logit|.
    return np.where(
        logits >= 0, 1.0 / (1.0 + np.exp(-logits)), np.exp(logits) / (1.0 + np.exp(logits))
    )


def sparsity(model: tf.keras.Model, tol: float = 0.0) -> float:
    """Fraction of penalised kernel weights (:func:`kernel_variables`) with abs value > ``tol``."""
    kernels = [k.numpy().ravel() for k in kernel_variables(model)]
    weights = np.concatenate(kernels)
    return float(np.mean(np.abs(weights) > tol))

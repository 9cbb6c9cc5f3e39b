"""Target models: an L1-penalised logistic regression ("Lasso") and a one-layer 1-D CNN.

Both models output ONE LOGIT per example; there is no sigmoid in the graph, and every loss in
the study is computed from logits (the paper's code applied a from-logits loss to a sigmoid
output, which we deliberately do not reproduce). The L1 penalty is not a Keras regularizer:
it is data-independent, so the trainer applies it as a proximal (soft-thresholding) step
after the possibly noisy gradient step (see :mod:`dpmia_utils.training`). ``l1_penalty``
exists to report the penalised objective.

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

ModelKind = Literal["lasso", "cnn"]
MODEL_KINDS: tuple[str, ...] = ("lasso", "cnn")

#: Environment variable that sets TensorFlow's intra/inter-op thread counts at import.
THREADS_ENV_VAR = "DPMIA_TF_THREADS"


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
    """What defines a target model: its kind, L1 strength and (CNN only) its kernels."""

    kind: ModelKind
    l1: float = 0.0
    n_kernels: int = 16
    kernel_size: int = 9

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"kind must be one of {MODEL_KINDS}, got {self.kind!r}")
        if self.l1 < 0:
            raise ValueError(f"l1 must be >= 0, got {self.l1}")
        if self.n_kernels < 1 or self.kernel_size < 1:
            raise ValueError("n_kernels and kernel_size must be positive")

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form for records and hashing."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        """Rebuild a spec from :meth:`to_dict` output; unknown keys are an error."""
        unknown = set(data) - {"kind", "l1", "n_kernels", "kernel_size"}
        if unknown:
            raise ValueError(f"unknown ModelSpec keys: {sorted(unknown)}")
        return cls(
            kind=data["kind"],
            l1=float(data.get("l1", 0.0)),
            n_kernels=int(data.get("n_kernels", 16)),
            kernel_size=int(data.get("kernel_size", 9)),
        )


def _layer_seeds(seed: int, count: int) -> list[int]:
    """Independent 31-bit seeds for each layer's initializer, derived from one model seed."""
    state = np.random.SeedSequence([int(seed), 0x6D6F64]).generate_state(count)
    return [int(s & 0x7FFFFFFF) for s in state]


def build_model(spec: ModelSpec, n_features: int, seed: int) -> tf.keras.Model:
    """Build the target model (one logit per example) with initial weights fixed by ``seed``.

    :mod:`dpmia_utils.fast_engine` computes gradients of this architecture by hand: it finds
    the layers by their names ("conv", "logit") and checks the Conv1D settings.
    """
    if n_features < 1:
        raise ValueError("n_features must be positive")
    inputs = tf.keras.Input(shape=(n_features,), dtype=tf.float32, name="genotypes")
    if spec.kind == "lasso":
        (dense_seed,) = _layer_seeds(seed, 1)
        logit = tf.keras.layers.Dense(
            1,
            kernel_initializer=tf.keras.initializers.GlorotUniform(seed=dense_seed),
            bias_initializer="zeros",
            name="logit",
        )(inputs)
    else:
        if spec.kernel_size > n_features:
            raise ValueError("kernel_size is larger than the number of features")
        conv_seed, dense_seed = _layer_seeds(seed, 2)
        hidden = tf.keras.layers.Reshape((n_features, 1), name="as_sequence")(inputs)
        hidden = tf.keras.layers.Conv1D(
            spec.n_kernels,
            spec.kernel_size,
            strides=1,
            padding="valid",
            activation="relu",
            kernel_initializer=tf.keras.initializers.GlorotUniform(seed=conv_seed),
            bias_initializer="zeros",
            name="conv",
        )(hidden)
        hidden = tf.keras.layers.Flatten(name="flatten")(hidden)
        logit = tf.keras.layers.Dense(
            1,
            kernel_initializer=tf.keras.initializers.GlorotUniform(seed=dense_seed),
            bias_initializer="zeros",
            name="logit",
        )(hidden)
    return tf.keras.Model(inputs=inputs, outputs=logit, name=f"{spec.kind}_target")


def kernel_variables(model: tf.keras.Model) -> list[tf.Variable]:
    """The weight matrices/filters that the L1 penalty applies to (kernels, never biases)."""
    return [layer.kernel for layer in model.layers if getattr(layer, "kernel", None) is not None]


def l1_penalty(model: tf.keras.Model, l1: float) -> float:
    """The L1 term ``l1 * sum |kernel weights|`` of the objective (biases excluded)."""
    total = sum(float(tf.reduce_sum(tf.abs(k))) for k in kernel_variables(model))
    return float(l1) * total


def _compiled_forward(model: tf.keras.Model) -> Any:
    """The model's inference pass as one traced ``tf.function``, built once per model.

    Eager Keras calls on 512-row chunks materialise the CNN's (512, L, filters) activations
    (462 MB on the real data); a compiled pass over small chunks keeps them in cache and was
    measured 4x faster (0.15 s against 0.59 s for 713 rows of the 8x5 CNN, one thread).
    """
    forward = getattr(model, "_dpmia_forward", None)
    if forward is None:
        signature = [tf.TensorSpec([None, int(model.inputs[0].shape[1])], tf.float32)]
        forward = tf.function(lambda x: model(x, training=False)[:, 0], input_signature=signature)
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
    """Fraction of kernel weights (biases excluded) whose absolute value exceeds ``tol``."""
    kernels = [k.numpy().ravel() for k in kernel_variables(model)]
    weights = np.concatenate(kernels)
    return float(np.mean(np.abs(weights) > tol))

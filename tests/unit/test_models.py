"""Target models: architecture computed independently in numpy, seeding, sparsity, L1 term."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from dpmia_utils.models import (
    ModelSpec,
    build_model,
    dropout_mask,
    forward,
    kernel_variables,
    l1_penalty,
    predict_logits,
    predict_proba,
    sparsity,
)


def genotypes(n: int, p: int, seed: int = 0) -> np.ndarray:
    """Random haploid genotypes coded as +-1 float32."""
    rng = np.random.default_rng(seed)
    return rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=(n, p))


def randomize_biases(model, seed: int = 1) -> None:
    """Give biases non-zero values so the reference computations exercise them."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.normal(size=layer.bias.shape).astype(np.float32))


def numpy_cnn_logits(X: np.ndarray, conv_w, conv_b, dense_w, dense_b, mask=None) -> np.ndarray:
    """The authors' CNN written out by hand: one-hot, "same" Conv1D + ReLU, mean of pairs,
    optional dropout multiplier, flatten (time-major), dense."""
    k, channels, filters = conv_w.shape
    n, p = X.shape
    one_hot = np.stack([X == -1, X == 1], axis=-1).astype(np.float64)  # to_categorical
    left = (k - 1) // 2  # TensorFlow's SAME: the odd extra zero goes to the right
    padded = np.zeros((n, p + k - 1, channels))
    padded[:, left : left + p] = one_hot
    conv = np.zeros((n, p, filters))
    for t in range(p):
        conv[:, t, :] = np.einsum("njc,jcf->nf", padded[:, t : t + k], conv_w) + conv_b
    relu = np.maximum(conv, 0)
    pooled = np.stack([(relu[:, 2 * s] + relu[:, 2 * s + 1]) / 2 for s in range(p // 2)], axis=1)
    if mask is not None:
        pooled = pooled * mask
    return pooled.reshape(n, -1) @ dense_w[:, 0] + dense_b[0]


def test_lasso_outputs_the_linear_logit_without_sigmoid():
    X = genotypes(50, 40)
    model = build_model(ModelSpec("lasso"), 40, seed=3)
    randomize_biases(model)
    (dense,) = [layer for layer in model.layers if layer.name == "logit"]
    w, b = dense.kernel.numpy(), dense.bias.numpy()
    expected = X.astype(np.float64) @ w[:, 0] + b[0]
    logits = predict_logits(model, X, batch_size=7)
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
    # Logits are unbounded, so a sigmoid in the graph would show up as values inside (0, 1).
    model.layers[-1].kernel.assign(10 * model.layers[-1].kernel)
    assert np.abs(predict_logits(model, X)).max() > 1.0
    assert len(model.trainable_variables) == 2


@pytest.mark.parametrize(
    ("n_kernels", "kernel_size", "p"), [(8, 5, 64), (16, 9, 64), (3, 4, 31), (2, 6, 6)]
)
def test_cnn_matches_handwritten_one_hot_same_conv_pool_dense(n_kernels, kernel_size, p):
    # Odd p (the pooling drops the last position), even kernels (asymmetric padding), k == p.
    X = genotypes(20, p, seed=1)
    spec = ModelSpec("cnn", n_kernels=n_kernels, kernel_size=kernel_size, dropout=0.5)
    model = build_model(spec, p, seed=5)
    randomize_biases(model)
    conv = model.get_layer("conv")
    dense = model.get_layer("logit")
    assert conv.kernel.shape == (kernel_size, 2, n_kernels)
    assert dense.kernel.shape == ((p // 2) * n_kernels, 1)
    weights = [conv.kernel, conv.bias, dense.kernel, dense.bias]
    weights = [w.numpy().astype(np.float64) for w in weights]
    expected = numpy_cnn_logits(X.astype(np.float64), *weights)
    # Inference never drops: predictions are deterministic despite dropout 0.5.
    first = predict_logits(model, X, batch_size=6)
    np.testing.assert_allclose(first, expected, rtol=1e-4, atol=1e-4)
    assert np.array_equal(first, predict_logits(model, X, batch_size=6))
    np.testing.assert_allclose(forward(model, tf.constant(X)).numpy(), expected, atol=1e-4)
    # Training mode with an explicit mask is the same network times the mask.
    mask = dropout_mask(model, 20, tf.constant([3, 1], tf.int64))
    np.testing.assert_allclose(
        forward(model, tf.constant(X), mask).numpy(),
        numpy_cnn_logits(X.astype(np.float64), *weights, mask=mask.numpy()),
        rtol=1e-4,
        atol=1e-4,
    )


@pytest.mark.parametrize(
    ("n_kernels", "kernel_size", "p", "batch_size"),
    [(8, 5, 64, 32), (8, 5, 301, 7), (3, 4, 31, 5), (2, 6, 6, 64)],
)
def test_cnn_predictions_equal_the_keras_layers_to_the_bit(n_kernels, kernel_size, p, batch_size):
    # predict_logits runs the training engine's one-hot-as-matmul pass, not the Keras layers;
    # every CV epoch scores its held-out fold with it, so it must not move a single bit.
    X = genotypes(45, p, seed=2)
    model = build_model(ModelSpec("cnn", n_kernels=n_kernels, kernel_size=kernel_size), p, 8)
    randomize_biases(model, seed=3)
    for v in model.trainable_variables:
        v.assign(v + tf.random.stateless_normal(v.shape, [4, 5]) * 0.1)
    keras = model(tf.constant(X), training=False).numpy()[:, 0].astype(np.float64)
    assert np.array_equal(predict_logits(model, X, batch_size=batch_size), keras)
    # Any input dtype holding the same values gives the same logits (the stages pass int8).
    assert np.array_equal(predict_logits(model, X.astype(np.int8), batch_size=batch_size), keras)


@pytest.mark.parametrize(("kernel_size", "p"), [(5, 40), (4, 41)])
def test_cnn_equals_the_authors_keras_sequential_with_the_same_weights(kernel_size, p):
    # The layers of CNN-dp.py on an explicit to_categorical input (genotype -1 recoded 0).
    X = genotypes(12, p, seed=4)
    model = build_model(ModelSpec("cnn", n_kernels=4, kernel_size=kernel_size, dropout=0.25), p, 3)
    randomize_biases(model)
    authors = tf.keras.Sequential(
        [
            tf.keras.layers.Conv1D(
                4, kernel_size, padding="same", activation="relu", input_shape=(p, 2)
            ),
            tf.keras.layers.AveragePooling1D(pool_size=2),
            tf.keras.layers.Dropout(0.25),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(1),
        ]
    )
    authors.set_weights(model.get_weights())
    one_hot = tf.keras.utils.to_categorical(np.where(X == -1, 0, 1), num_classes=2)
    expected = authors(one_hot, training=False).numpy()[:, 0]
    np.testing.assert_allclose(predict_logits(model, X), expected, rtol=1e-6, atol=1e-6)
    assert any(np.abs(expected) > 1e-3)


def test_dropout_mask_keeps_one_minus_rate_scaled_and_differs_by_seed():
    model = build_model(ModelSpec("cnn", n_kernels=8, kernel_size=5, dropout=0.25), 200, seed=0)
    first = dropout_mask(model, 64, tf.constant([7, 0], tf.int64)).numpy()
    assert first.shape == (64, 100, 8)
    assert set(np.unique(first)) == {0.0, np.float32(1 / 0.75)}
    # 51,200 Bernoulli(0.75) entries: s.e. of the kept fraction 0.0019; allow 4 s.e.
    assert np.mean(first > 0) == pytest.approx(0.75, abs=4 * 0.0019)
    again = dropout_mask(model, 64, tf.constant([7, 0], tf.int64)).numpy()
    next_step = dropout_mask(model, 64, tf.constant([7, 1], tf.int64)).numpy()
    assert np.array_equal(first, again)
    # Independent masks agree on 0.75^2 + 0.25^2 = 62.5% of entries.
    assert np.mean((first > 0) == (next_step > 0)) == pytest.approx(0.625, abs=0.01)
    for rate in (0.5, 0.1):  # bytes, and 32-bit words for a rate that is no multiple of 2^-16
        spec = ModelSpec("cnn", n_kernels=8, kernel_size=5, dropout=rate)
        mask = dropout_mask(build_model(spec, 200, 0), 64, tf.constant([7, 0], tf.int64)).numpy()
        assert np.mean(mask > 0) == pytest.approx(1 - rate, abs=4 * 0.0022)
        assert mask.max() == np.float32(1 / (1 - rate))
    no_dropout = build_model(ModelSpec("cnn", n_kernels=8, kernel_size=5), 200, seed=0)
    assert dropout_mask(no_dropout, 64, tf.constant([7, 0], tf.int64)) is None


def test_predict_proba_is_sigmoid_of_logits():
    X = genotypes(30, 20)
    model = build_model(ModelSpec("lasso"), 20, seed=0)
    model.layers[-1].kernel.assign(50 * model.layers[-1].kernel)  # saturate some examples
    logits = predict_logits(model, X)
    proba = predict_proba(model, X)
    assert proba.shape == (30,)
    np.testing.assert_allclose(proba, 1.0 / (1.0 + np.exp(-logits)), rtol=1e-12, atol=1e-300)
    assert np.all((proba >= 0) & (proba <= 1))


@pytest.mark.parametrize("kind", ["lasso", "cnn"])
def test_same_seed_same_initial_weights_different_seed_different(kind):
    spec = ModelSpec(kind, n_kernels=8, kernel_size=5)
    first = build_model(spec, 64, seed=11).get_weights()
    again = build_model(spec, 64, seed=11).get_weights()
    other = build_model(spec, 64, seed=12).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], other[0])


def test_sparsity_counts_the_penalised_conv_kernel_of_the_cnn_only():
    model = build_model(ModelSpec("cnn", n_kernels=8, kernel_size=5), 64, seed=0)
    conv, dense = model.get_layer("conv"), model.get_layer("logit")
    conv_w = np.ones(conv.kernel.shape, np.float32)
    conv_w[0] = 0.0  # 16 of 80 conv weights are zero
    conv_w[1, 0] = 1e-4  # 8 more are tiny
    dense.kernel.assign(np.zeros(dense.kernel.shape, np.float32))  # unpenalised: must not count
    conv.kernel.assign(conv_w)
    randomize_biases(model)  # biases must not count
    assert sparsity(model) == pytest.approx(64 / 80)
    assert sparsity(model, tol=1e-3) == pytest.approx(56 / 80)
    assert [k.ref() for k in kernel_variables(model)] == [conv.kernel.ref()]
    lasso = build_model(ModelSpec("lasso"), 64, seed=0)
    assert [k.ref() for k in kernel_variables(lasso)] == [lasso.get_layer("logit").kernel.ref()]


def test_l1_penalty_sums_absolute_penalised_kernel_weights_without_biases():
    model = build_model(ModelSpec("cnn", n_kernels=8, kernel_size=5), 64, seed=2)
    randomize_biases(model)
    conv = model.get_layer("conv")
    expected = 0.001352 * np.abs(conv.kernel.numpy()).sum()
    assert l1_penalty(model, 0.001352) == pytest.approx(expected, rel=1e-6)
    assert l1_penalty(model, 0.0) == 0.0


def test_model_spec_round_trip_and_validation():
    spec = ModelSpec("cnn", l1=0.001352, n_kernels=8, kernel_size=5, dropout=0.25)
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    assert spec.to_dict()["dropout"] == 0.25
    assert ModelSpec.from_dict({"kind": "lasso"}) == ModelSpec("lasso", 0.0, 16, 9, 0.0)
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="dropout"):
            ModelSpec("cnn", dropout=bad)
    with pytest.raises(ValueError, match="dropout"):
        ModelSpec("lasso", dropout=0.25)
    with pytest.raises(ValueError):
        ModelSpec("ridge")
    with pytest.raises(ValueError):
        ModelSpec("lasso", l1=-1.0)
    with pytest.raises(ValueError):
        ModelSpec.from_dict({"kind": "lasso", "l2": 1.0})


def test_threads_env_var_sets_tensorflow_thread_pools():
    code = (
        "import tensorflow as tf, dpmia_utils.models as m;"
        "print(tf.config.threading.get_intra_op_parallelism_threads(),"
        " tf.config.threading.get_inter_op_parallelism_threads())"
    )
    env = {**os.environ, "DPMIA_TF_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split()[-2:] == ["1", "1"]

"""Target models: architecture computed independently in numpy, seeding, sparsity, L1 term."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from dpmia_utils.models import (
    ModelSpec,
    build_model,
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


def numpy_cnn_logits(X: np.ndarray, conv_w, conv_b, dense_w, dense_b) -> np.ndarray:
    """Valid, stride-1 Conv1D with ReLU, flatten (time-major), dense: written out by hand."""
    k, _, filters = conv_w.shape
    n, p = X.shape
    length = p - k + 1
    conv = np.zeros((n, length, filters))
    for t in range(length):
        conv[:, t, :] = X[:, t : t + k] @ conv_w[:, 0, :] + conv_b
    hidden = np.maximum(conv, 0).reshape(n, length * filters)
    return hidden @ dense_w[:, 0] + dense_b[0]


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


@pytest.mark.parametrize(("n_kernels", "kernel_size"), [(8, 5), (16, 9)])
def test_cnn_matches_handwritten_conv_relu_flatten_dense(n_kernels, kernel_size):
    p = 64
    X = genotypes(20, p, seed=1)
    model = build_model(ModelSpec("cnn", n_kernels=n_kernels, kernel_size=kernel_size), p, seed=5)
    randomize_biases(model)
    conv = model.get_layer("conv")
    dense = model.get_layer("logit")
    assert conv.kernel.shape == (kernel_size, 1, n_kernels)
    assert dense.kernel.shape == ((p - kernel_size + 1) * n_kernels, 1)
    expected = numpy_cnn_logits(
        X.astype(np.float64),
        conv.kernel.numpy().astype(np.float64),
        conv.bias.numpy(),
        dense.kernel.numpy().astype(np.float64),
        dense.bias.numpy(),
    )
    np.testing.assert_allclose(
        predict_logits(model, X, batch_size=6), expected, rtol=1e-4, atol=1e-4
    )


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


def test_sparsity_counts_nonzero_kernel_weights_only():
    model = build_model(ModelSpec("cnn", n_kernels=8, kernel_size=5), 64, seed=0)
    conv, dense = model.get_layer("conv"), model.get_layer("logit")
    conv_w = np.ones(conv.kernel.shape, np.float32)
    conv_w[0] = 0.0  # 8 of 40 conv weights are zero
    dense_w = np.zeros(dense.kernel.shape, np.float32)
    dense_w[:100] = 0.5  # 100 of 480 dense weights are non-zero
    dense_w[:10] = 1e-4
    conv.kernel.assign(conv_w)
    dense.kernel.assign(dense_w)
    randomize_biases(model)  # biases must not count
    total = conv_w.size + dense_w.size
    assert sparsity(model) == pytest.approx((32 + 100) / total)
    assert sparsity(model, tol=1e-3) == pytest.approx((32 + 90) / total)
    assert [k.shape for k in kernel_variables(model)] == [conv.kernel.shape, dense.kernel.shape]


def test_l1_penalty_sums_absolute_kernel_weights_without_biases():
    model = build_model(ModelSpec("cnn", n_kernels=8, kernel_size=5), 64, seed=2)
    randomize_biases(model)
    conv, dense = model.get_layer("conv"), model.get_layer("logit")
    expected = 0.001352 * (np.abs(conv.kernel.numpy()).sum() + np.abs(dense.kernel.numpy()).sum())
    assert l1_penalty(model, 0.001352) == pytest.approx(expected, rel=1e-6)
    assert l1_penalty(model, 0.0) == 0.0


def test_model_spec_round_trip_and_validation():
    spec = ModelSpec("cnn", l1=0.001352, n_kernels=8, kernel_size=5)
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    assert ModelSpec.from_dict({"kind": "lasso"}) == ModelSpec("lasso", 0.0, 16, 9)
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

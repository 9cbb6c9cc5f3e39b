"""(DP-)SGD training: clipping, noise, the L1 prox step, sampling, seeding, tf-privacy cross-check."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import tensorflow as tf

from dpmia_utils import seeds, training
from dpmia_utils.models import ModelSpec, build_model, dropout_mask, forward, sparsity
from dpmia_utils.training import (
    ClippedGradientEngine,
    ClippedGradSum,
    ReferenceEngine,
    StepBatch,
    TrainConfig,
    cross_validate,
    epoch_batches,
    evaluate,
    poisson_slots,
    private_gradient,
    shuffle_permutation,
    train_model,
)
from dpmia_utils.training.config import SEED_DROPOUT
from dpmia_utils.training.engines import registry

CNN = ModelSpec("cnn", n_kernels=4, kernel_size=5)
LASSO = ModelSpec("lasso")


def genotypes(n: int, p: int, seed: int = 0) -> np.ndarray:
    """Random haploid genotypes coded as +-1 float32."""
    rng = np.random.default_rng(seed)
    return rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=(n, p))


def sparse_linear_problem(n: int, p: int, seed: int = 0, causal: int = 5):
    """Labels from the sign of a sum of a few genotypes (plus a little noise)."""
    rng = np.random.default_rng(seed)
    X = genotypes(n, p, seed)
    beta = np.zeros(p)
    beta[rng.choice(p, causal, replace=False)] = rng.choice([-1.0, 1.0], causal)
    y = (X @ beta + 0.3 * rng.normal(size=n) > 0).astype(np.int64)
    return X, y


def weights(model) -> list[np.ndarray]:
    return [w.copy() for w in model.get_weights()]


def loop_clipped_mean(model, X, y, clip, groups):
    """Mean over microbatches of clipped gradients of each microbatch's mean loss (one tape each)."""
    total = [np.zeros(v.shape, np.float64) for v in model.trainable_variables]
    norms = []
    for group in groups:
        with tf.GradientTape() as tape:
            logits = model(X[group], training=True)
            loss = tf.reduce_mean(
                tf.keras.losses.binary_crossentropy(y[group][:, None], logits, from_logits=True)
            )
        grads = [
            g.numpy().astype(np.float64) for g in tape.gradient(loss, model.trainable_variables)
        ]
        norm = math.sqrt(sum(float(np.sum(g**2)) for g in grads))
        norms.append(norm)
        factor = min(1.0, clip / norm)
        total = [t + factor * g for t, g in zip(total, grads, strict=True)]
    return [t / len(groups) for t in total], np.array(norms)


@pytest.mark.parametrize("spec", [LASSO, CNN], ids=["lasso", "cnn"])
@pytest.mark.parametrize("microbatch_size", [1, 2])
@pytest.mark.parametrize("clip", [1e-4, 0.3, 1e4])
def test_noise_free_dp_gradient_is_mean_of_clipped_microbatch_gradients(
    spec, microbatch_size, clip
):
    b, p = 8, 64
    X = genotypes(b, p, seed=3)
    y = np.random.default_rng(4).integers(0, 2, b).astype(np.float32)
    model = build_model(spec, p, seed=7)
    engine = ReferenceEngine(model, spec)
    groups = [list(range(start, start + microbatch_size)) for start in range(0, b, microbatch_size)]
    segment_ids = (
        None if microbatch_size == 1 else tf.constant(np.arange(b) // microbatch_size, tf.int32)
    )
    num_segments = None if microbatch_size == 1 else len(groups)
    result = private_gradient(
        engine,
        StepBatch(
            tf.constant(X), tf.constant(y), segment_ids=segment_ids, num_segments=num_segments
        ),
        l2_clip=clip,
        noise_multiplier=0.0,
        denominator=len(groups),
        noise_seed=tf.constant([0, 0], tf.int64),
    )
    expected, norms = loop_clipped_mean(model, X, y, clip, groups)
    # The three clip values are: every microbatch clipped, some clipped, none clipped.
    if clip == 1e-4:
        assert np.all(norms > clip)
    elif clip == 1e4:
        assert np.all(norms < clip)
    for got, want in zip(result.grads, expected, strict=True):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-7 * max(clip, 1e-2))


def first_step_config(**overrides) -> TrainConfig:
    base = dict(
        learning_rate=0.1, batch_size=8, epochs=1, dp=True, l2_clip=0.05, noise_multiplier=0.0
    )
    return TrainConfig(**{**base, **overrides})


@pytest.mark.parametrize("sampling", ["shuffle", "poisson"])
@pytest.mark.parametrize("microbatch_fraction", [1.0, 0.5])
def test_one_training_step_applies_the_clipped_mean_gradient(sampling, microbatch_fraction):
    # n == batch_size: shuffle gives one full batch; Poisson has q = 1 (everyone, one step).
    n, p = 8, 40
    X, y = sparse_linear_problem(n, p, seed=1)
    config = first_step_config(sampling=sampling, microbatch_fraction=microbatch_fraction)
    initial = train_model(X, y, LASSO, dataclasses.replace(config, epochs=0)).model
    result = train_model(X, y, LASSO, config)
    m = config.microbatch_size
    if sampling == "shuffle":
        order = shuffle_permutation(n, config.seed, 0)
        groups = [order[s : s + m] for s in range(0, n, m)]
        denominator = len(groups)
    else:
        slots = poisson_slots(n, config.batch_size, config.num_microbatches, config.seed, 0)[0]
        if m == 1:
            groups = [[i] for i in range(n)]
        else:
            groups = [np.flatnonzero(slots == s) for s in range(config.num_microbatches)]
            groups = [g for g in groups if g.size]
        denominator = config.num_microbatches  # expected count, not realised
    mean_clipped, _ = loop_clipped_mean(initial, X, y.astype(np.float32), config.l2_clip, groups)
    step = [g * len(groups) / denominator for g in mean_clipped]
    expected = [w - config.learning_rate * g for w, g in zip(weights(initial), step, strict=True)]
    assert result.steps == 1
    for got, want in zip(weights(result.model), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_poisson_dp_steps_divide_by_the_expected_batch_size():
    # Several Poisson steps of varying (possibly zero) size, replayed by hand step by step.
    n, p = 48, 40
    X, y = sparse_linear_problem(n, p, seed=14)
    config = first_step_config(sampling="poisson", l2_clip=0.2, seed=3)
    initial = train_model(X, y, LASSO, dataclasses.replace(config, epochs=0)).model
    result = train_model(X, y, LASSO, config)
    batches = epoch_batches(n, config, 0)
    assert len({len(b) for b in batches}) > 1  # realised sizes differ from step to step
    replay = build_model(LASSO, p, seed=0)
    replay.set_weights(weights(initial))
    for batch in batches:
        if len(batch) == 0:
            continue
        mean_clipped, _ = loop_clipped_mean(
            replay, X, y.astype(np.float32), config.l2_clip, [[i] for i in batch]
        )
        replay.set_weights(
            [
                w - config.learning_rate * g * len(batch) / config.batch_size
                for w, g in zip(weights(replay), mean_clipped, strict=True)
            ]
        )
    for got, want in zip(weights(result.model), weights(replay), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("engine", ["fast", "reference"])
@pytest.mark.parametrize("sampling", ["shuffle", "poisson"])
def test_noise_std_per_coordinate_is_clip_times_sigma_over_batch_size(sampling, engine):
    # Zero genotypes: the data gradient of every kernel weight is 0, so one epoch moves the
    # kernel by -lr * (sum of the epoch's noise vectors) / batch_size exactly.
    n, p, batch = 64, 3000, 16
    X = np.zeros((n, p), np.float32)
    y = np.random.default_rng(0).integers(0, 2, n)
    config = TrainConfig(
        learning_rate=0.5,
        batch_size=batch,
        epochs=1,
        dp=True,
        l2_clip=0.7,
        noise_multiplier=1.3,
        sampling=sampling,
        engine=engine,
    )
    initial = train_model(X, y, LASSO, dataclasses.replace(config, epochs=0)).model
    result = train_model(X, y, LASSO, config)
    moves = (weights(result.model)[0] - weights(initial)[0]).ravel()
    steps = result.steps
    expected_std = (
        config.learning_rate * config.l2_clip * config.noise_multiplier * math.sqrt(steps) / batch
    )
    # The sample std of N = 3000 Gaussians has relative s.e. 1/sqrt(2N) = 1.3%; allow 5% (3.9 s.e.).
    assert np.std(moves) == pytest.approx(expected_std, rel=0.05)
    assert abs(np.mean(moves)) < 4 * expected_std / math.sqrt(p)
    # Gaussian shape: the fraction within one std is 68.3% (s.e. 0.85% for N = 3000).
    assert np.mean(np.abs(moves) < expected_std) == pytest.approx(0.6827, abs=0.035)


def test_noise_of_private_gradient_is_isolated_and_fresh_per_seed():
    b, p = 16, 2000
    X = genotypes(b, p, seed=9)
    y = np.random.default_rng(9).integers(0, 2, b).astype(np.float32)
    model = build_model(LASSO, p, seed=0)
    engine = ReferenceEngine(model, LASSO)
    kwargs = dict(l2_clip=0.5, denominator=b)
    clean = private_gradient(
        engine,
        StepBatch(X, y),
        noise_multiplier=0.0,
        noise_seed=tf.constant([1, 0], tf.int64),
        **kwargs,
    ).grads[0]
    noises = [
        (
            private_gradient(
                engine,
                StepBatch(X, y),
                noise_multiplier=2.0,
                noise_seed=tf.constant([1, step], tf.int64),
                **kwargs,
            ).grads[0]
            - clean
        )
        .numpy()
        .ravel()
        for step in range(5)
    ]
    pooled = np.concatenate(noises)
    # 10,000 draws: relative s.e. of the std is 0.7%; allow 3%.
    assert np.std(pooled) == pytest.approx(0.5 * 2.0 / b, rel=0.03)
    assert abs(np.corrcoef(noises[0], noises[1])[0, 1]) < 4 / math.sqrt(p)


@pytest.mark.parametrize("dp", [True, False])
def test_l1_prox_step_is_neither_clipped_nor_noised(dp):
    # Zero genotypes: no data gradient on the kernel; a tiny clip would cap any clipped
    # L1 subgradient at lr * clip per step, far below the lr * l1 = 0.01 shrink we expect.
    n, p = 32, 300
    X = np.zeros((n, p), np.float32)
    y = np.r_[np.ones(24), np.zeros(8)].astype(int)
    spec = ModelSpec("lasso", l1=1.0)
    config = TrainConfig(
        learning_rate=0.01,
        batch_size=16,
        epochs=3,
        dp=dp,
        l2_clip=1e-6,
        noise_multiplier=0.0,
        sampling="shuffle",
    )
    w0 = weights(train_model(X, y, spec, dataclasses.replace(config, epochs=0)).model)[0]
    result = train_model(X, y, spec, config)
    shrink = config.learning_rate * spec.l1 * result.steps  # 6 steps
    expected = np.sign(w0) * np.maximum(np.abs(w0) - shrink, 0.0)
    kernel, bias = weights(result.model)
    np.testing.assert_allclose(kernel, expected, rtol=0, atol=1e-6)
    assert 0 < np.sum(kernel == 0.0) < p  # some reached exactly zero, others still shrinking
    assert np.all(kernel[expected == 0] == 0.0)
    # Biases are not thresholded: with 3/4 positive labels the bias moves up.
    assert bias[0] > 0


def test_huge_l1_zeroes_the_conv_kernel_but_not_biases_or_the_dense_kernel():
    X, y = sparse_linear_problem(64, 64, seed=2)
    y[:48] = 1
    result = train_model(
        X, y, ModelSpec("cnn", l1=100.0, n_kernels=4, kernel_size=5), TrainConfig(epochs=1)
    )
    assert sparsity(result.model) == 0.0
    assert np.all(result.model.get_layer("conv").kernel.numpy() == 0.0)
    assert result.model.get_layer("logit").bias.numpy()[0] != 0.0
    # The authors penalised the conv kernel only: the dense kernel keeps its weights.
    assert np.mean(result.model.get_layer("logit").kernel.numpy() != 0.0) > 0.9


def first_cnn_step(spec, config, X, y):
    """Initial weights and the gradient of the first step's mean loss, replayed by hand.

    n == batch_size and shuffle sampling: the first step is the whole permuted data set; its
    dropout mask is the one documented for (dropout seed, global step 0).
    """
    model = train_model(X, y, spec, dataclasses.replace(config, epochs=0)).model
    order = shuffle_permutation(len(X), config.seed, 0)
    seed = tf.constant([seeds.derive(config.seed, SEED_DROPOUT), 0], tf.int64)
    drop = dropout_mask(model, len(X), seed)
    with tf.GradientTape() as tape:
        logits = forward(model, tf.constant(X[order]), drop)
        loss = tf.reduce_mean(
            tf.nn.sigmoid_cross_entropy_with_logits(
                labels=y[order].astype(np.float32), logits=logits
            )
        )
    grads = [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]
    return weights(model), grads


def test_cnn_l1_prox_thresholds_the_conv_kernel_only_and_dropout_is_applied_in_training():
    n, p = 8, 40
    X, y = sparse_linear_problem(n, p, seed=3)
    spec = ModelSpec("cnn", l1=0.3, n_kernels=3, kernel_size=5, dropout=0.5)
    config = TrainConfig(learning_rate=0.1, batch_size=n, epochs=1, sampling="shuffle", seed=4)
    (conv_w, conv_b, dense_w, dense_b), grads = first_cnn_step(spec, config, X, y)
    result = weights(train_model(X, y, spec, config).model)
    lr, threshold = config.learning_rate, config.learning_rate * spec.l1
    stepped = [w - lr * g for w, g in zip((conv_w, conv_b, dense_w, dense_b), grads, strict=True)]
    expected = [np.sign(stepped[0]) * np.maximum(np.abs(stepped[0]) - threshold, 0), *stepped[1:]]
    for got, want in zip(result, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert 0 < np.sum(result[0] == 0.0) < result[0].size  # the prox step bit on the conv kernel
    assert np.all(result[2] != 0.0)  # and never on the dense kernel
    # Without the dropout mask the same step lands elsewhere: the mask was applied.
    no_drop = weights(train_model(X, y, dataclasses.replace(spec, dropout=0.0), config).model)
    assert not np.allclose(no_drop[2], result[2], atol=1e-4)


def test_sparsity_decreases_as_l1_grows():
    X, y = sparse_linear_problem(200, 300, seed=5)
    config = TrainConfig(learning_rate=0.05, epochs=10, sampling="shuffle")
    nonzero = [
        sparsity(train_model(X, y, ModelSpec("lasso", l1=l1), config).model)
        for l1 in (0.0, 0.01, 0.05)
    ]
    assert nonzero[0] == 1.0
    assert nonzero[0] > nonzero[1] > nonzero[2]


@pytest.mark.parametrize("spec", [LASSO, CNN], ids=["lasso", "cnn"])
def test_same_seed_identical_weights_different_seed_different(spec):
    X, y = sparse_linear_problem(96, 64, seed=6)
    config = TrainConfig(epochs=2, dp=True, noise_multiplier=0.8, microbatch_fraction=0.5, seed=3)
    first = train_model(X, y, spec, config)
    again = train_model(X, y, spec, config)
    other = train_model(X, y, spec, dataclasses.replace(config, seed=4))
    assert all(
        np.array_equal(a, b)
        for a, b in zip(weights(first.model), weights(again.model), strict=True)
    )
    assert first.history == again.history
    assert np.array_equal(first.batch_sizes, again.batch_sizes)
    assert not np.array_equal(weights(first.model)[0], weights(other.model)[0])


def test_poisson_batches_have_expected_mean_size_and_recorded_steps():
    n, p, batch, epochs = 400, 20, 16, 20
    X, y = sparse_linear_problem(n, p, seed=7)
    config = TrainConfig(batch_size=batch, epochs=epochs, sampling="poisson", seed=1)
    result = train_model(X, y, LASSO, config)
    assert result.steps == epochs * math.ceil(n / batch) == 500
    assert result.batch_sizes.shape == (500,)
    # Batch size ~ Binomial(400, 0.04): sd 3.92, s.e. of the mean over 500 steps 0.175.
    assert np.mean(result.batch_sizes) == pytest.approx(batch, abs=4 * 0.175)
    assert np.var(result.batch_sizes) == pytest.approx(n * (batch / n) * (1 - batch / n), rel=0.25)
    assert len(set(result.batch_sizes.tolist())) > 5  # sizes vary; not fixed batches
    # The trainer used exactly the batches that epoch_batches() describes.
    planned = np.concatenate([[len(b) for b in epoch_batches(n, config, e)] for e in range(epochs)])
    assert np.array_equal(planned, result.batch_sizes)
    assert result.sampling_probability == batch / n


def test_shuffle_batches_partition_each_epoch():
    n = 50
    config = TrainConfig(batch_size=16, sampling="shuffle", seed=2)
    batches = epoch_batches(n, config, epoch=0)
    assert [len(b) for b in batches] == [16, 16, 16, 2]
    assert np.array_equal(np.sort(np.concatenate(batches)), np.arange(n))
    assert not np.array_equal(np.concatenate(batches), np.concatenate(epoch_batches(n, config, 1)))


def test_empty_poisson_batch_is_a_noise_only_step():
    # q = 1/64 over 64 examples: many steps sample nobody, yet noise must still move weights.
    n, p = 64, 500
    X = np.zeros((n, p), np.float32)
    y = np.zeros(n, int)
    config = TrainConfig(batch_size=1, epochs=1, dp=True, noise_multiplier=1.0, seed=0)
    result = train_model(X, y, LASSO, config)
    assert np.sum(result.batch_sizes == 0) > 10
    initial = train_model(X, y, LASSO, dataclasses.replace(config, epochs=0)).model
    moves = weights(result.model)[0] - weights(initial)[0]
    # 64 noise draws of std clip*sigma/1, times lr: std 0.01 * sqrt(64) = 0.08 per coordinate.
    assert np.std(moves) == pytest.approx(0.08, rel=0.15)


def test_non_dp_lasso_learns_a_sparse_linear_rule():
    X, y = sparse_linear_problem(600, 300, seed=8)
    config = TrainConfig(learning_rate=0.05, epochs=20, sampling="shuffle")
    result = train_model(
        X[:400], y[:400], ModelSpec("lasso", l1=0.01), config, X_val=X[400:], y_val=y[400:]
    )
    held_out = evaluate(result.model, X[400:], y[400:])
    assert held_out["accuracy"] > 0.9
    assert len(result.history["val_accuracy"]) == 20
    assert result.history["val_accuracy"][-1] == held_out["accuracy"]
    assert result.history["loss"][-1] < result.history["loss"][0]


def test_evaluate_matches_sklearn_log_loss_and_accuracy():
    from sklearn.metrics import accuracy_score, log_loss

    from dpmia_utils.models import predict_proba

    X, y = sparse_linear_problem(100, 30, seed=10)
    model = build_model(LASSO, 30, seed=1)
    proba = predict_proba(model, X)
    got = evaluate(model, X, y)
    assert got["loss"] == pytest.approx(log_loss(y, proba), rel=1e-6)
    assert got["accuracy"] == pytest.approx(accuracy_score(y, proba > 0.5))


@pytest.mark.parametrize(
    ("dp", "microbatch_fraction", "loss"),
    [
        (True, 1.0, "logits"),
        (True, 0.5, "logits"),
        (False, 1.0, "logits"),
        (False, 0.5, "logits"),
        (True, 1.0, "paper-double-sigmoid"),
        (False, 1.0, "paper-double-sigmoid"),
    ],
)
def test_tf_privacy_optimizer_path_agrees_with_reference_without_noise(
    dp, microbatch_fraction, loss
):
    # Both paths see the same shuffle batches; tensorflow-privacy's optimizer is an
    # independent implementation of clipping, microbatching and averaging.
    n, p = 24, 64
    X, y = sparse_linear_problem(n, p, seed=11)
    spec = ModelSpec("cnn", l1=0.05, n_kernels=4, kernel_size=5)
    config = first_step_config(
        dp=dp,
        epochs=2,
        sampling="shuffle",
        microbatch_fraction=microbatch_fraction,
        l2_clip=0.3,
        loss=loss,
    )
    ours = train_model(X, y, spec, config)
    theirs = train_model(X, y, spec, dataclasses.replace(config, engine="tfp-keras"))
    assert theirs.steps == ours.steps == 6
    for a, b in zip(weights(ours.model), weights(theirs.model), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_tf_privacy_path_refuses_poisson_sampling():
    X, y = sparse_linear_problem(32, 10)
    with pytest.raises(ValueError, match="shuffle"):
        train_model(X, y, LASSO, TrainConfig(engine="tfp-keras", sampling="poisson"))


class MapFnEngine(ClippedGradientEngine):
    """An independent engine: sequential tf.map_fn over examples, clipping written again."""

    name = "map-fn"

    def clipped_grad_sum(self, batch, l2_clip):
        assert batch.segment_ids is None
        assert batch.dropout_mask is not None  # the spec below has dropout

        def one(args):
            xi, yi, real, drop = args
            with tf.GradientTape() as tape:
                logit = forward(self.model, xi[None], drop[None])[0]
                loss = tf.nn.sigmoid_cross_entropy_with_logits(labels=yi, logits=logit)
            grads = tape.gradient(loss, self.variables)
            factor = real * tf.minimum(1.0, l2_clip / tf.linalg.global_norm(grads))
            return [g * factor for g in grads], loss, logit

        signature = (
            [tf.TensorSpec(v.shape, tf.float32) for v in self.variables],
            tf.float32,
            tf.float32,
        )
        grads, losses, logits = tf.map_fn(
            one, (batch.x, batch.y, batch.mask, batch.dropout_mask), fn_output_signature=signature
        )
        return ClippedGradSum([tf.reduce_sum(g, axis=0) for g in grads], losses, logits)


def test_registered_engine_shares_the_privacy_semantics(monkeypatch):
    monkeypatch.setitem(registry._ENGINES, "map-fn", MapFnEngine)
    assert "map-fn" in training.available_engines()
    X, y = sparse_linear_problem(48, 64, seed=12)
    config = TrainConfig(epochs=2, dp=True, l2_clip=0.2, noise_multiplier=0.7, seed=5)
    spec = dataclasses.replace(CNN, dropout=0.25)
    ours = train_model(X, y, spec, config)
    theirs = train_model(X, y, spec, dataclasses.replace(config, engine="map-fn"))
    for a, b in zip(weights(ours.model), weights(theirs.model), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError):
        training.register_engine("reference", ReferenceEngine)
    with pytest.raises(KeyError):
        train_model(X, y, spec, dataclasses.replace(config, engine="nope"))


def test_cross_validate_reports_per_fold_results_with_sample_std():
    X, y = sparse_linear_problem(150, 40, seed=13)
    folds = [
        (np.setdiff1d(np.arange(150), test), test) for test in np.array_split(np.arange(150), 3)
    ]
    config = TrainConfig(epochs=5, sampling="shuffle")
    cv = cross_validate(X, y, LASSO, config, folds, progress=False)
    assert len(cv.models) == len(cv.test_accuracy) == len(cv.histories) == 3
    for model, (train_idx, test_idx), train_acc, test_acc in zip(
        cv.models, folds, cv.train_accuracy, cv.test_accuracy, strict=True
    ):
        assert test_acc == evaluate(model, X[test_idx], y[test_idx])["accuracy"]
        assert train_acc == evaluate(model, X[train_idx], y[train_idx])["accuracy"]
    assert cv.std_test_accuracy == pytest.approx(np.std(cv.test_accuracy, ddof=1))
    assert len(set(cv.fold_seeds)) == 3
    assert cv.summary()["std_ddof"] == 1
    with pytest.raises(ValueError, match="overlap"):
        cross_validate(X, y, LASSO, config, [(np.arange(100), np.arange(90, 150))], progress=False)


@pytest.mark.parametrize(
    "spec", [LASSO, ModelSpec("cnn", n_kernels=3, kernel_size=4, dropout=0.25)]
)
def test_cross_validate_on_int8_genotypes_equals_float32_to_the_bit(spec):
    # The stages pass the +-1 genotypes as int8 (a quarter of the memory); each fold's rows
    # become float32 when it trains, so weights, histories and accuracies must not move.
    X, y = sparse_linear_problem(90, 30, seed=21)
    folds = [(np.setdiff1d(np.arange(90), test), test) for test in np.array_split(np.arange(90), 3)]
    config = TrainConfig(epochs=3, batch_size=8, dp=True, noise_multiplier=0.7, sampling="poisson")
    as_float = cross_validate(X, y, spec, config, folds, progress=False)
    as_int8 = cross_validate(X.astype(np.int8), y, spec, config, folds, progress=False)
    assert as_int8.summary() | {"seconds": None} == as_float.summary() | {"seconds": None}
    assert as_int8.histories == as_float.histories
    for a, b in zip(as_int8.models, as_float.models, strict=True):
        for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
            assert np.array_equal(wa, wb)


def test_config_validation():
    config = TrainConfig(loss="paper-double-sigmoid", microbatch_fraction=0.5)
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert TrainConfig().loss == "logits"
    with pytest.raises(ValueError, match="loss"):
        TrainConfig(loss="mse")
    assert TrainConfig(microbatch_fraction=0.5).microbatch_size == 2
    assert TrainConfig(batch_size=8, microbatch_fraction=0.25).num_microbatches == 2
    with pytest.raises(ValueError):
        TrainConfig(microbatch_fraction=0.3)
    with pytest.raises(ValueError):
        TrainConfig(batch_size=9, microbatch_fraction=0.5)
    with pytest.raises(ValueError):
        TrainConfig(sampling="bootstrap")

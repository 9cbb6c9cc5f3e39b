"""The "fast" engine: clipped sums against explicit per-example gradients (dropout and the
double-sigmoid ablation included), same training as the reference engine, same accountant
inputs, untruncated Box-Muller noise, epoch plans."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from dpmia_utils import training
from dpmia_utils.models import GenotypeOneHot, ModelSpec, build_model, dropout_mask, forward
from dpmia_utils.training import (
    PAD_MULTIPLE,
    FastEngine,
    StepBatch,
    TrainConfig,
    box_muller,
    epoch_batches,
    gaussian_noise,
    loss_gradient,
    per_example_loss,
    plan_epoch,
    poisson_slots,
    train_model,
)

LASSO = ModelSpec("lasso")
CNN = ModelSpec("cnn", n_kernels=4, kernel_size=5)
# Dropout on, and an even kernel (Keras pads the extra zero on the right).
CNN_DROPOUT = ModelSpec("cnn", n_kernels=3, kernel_size=4, dropout=0.5)
SPECS = [LASSO, CNN, CNN_DROPOUT]
IDS = ["lasso", "cnn", "cnn-dropout"]


def genotypes(n: int, p: int, seed: int = 0) -> np.ndarray:
    """Random haploid genotypes coded as +-1 float32."""
    return np.random.default_rng(seed).choice(np.array([-1.0, 1.0], np.float32), size=(n, p))


def model_with_random_biases(spec: ModelSpec, p: int, seed: int) -> tf.keras.Model:
    """A model whose biases are non-zero (so bias gradients and ReLU masks are exercised)."""
    model = build_model(spec, p, seed=seed)
    rng = np.random.default_rng(seed)
    for var in model.trainable_variables:
        if len(var.shape) == 1:
            var.assign(rng.normal(scale=0.3, size=var.shape).astype(np.float32))
    return model


def bce(label, logit, loss="logits"):
    """Binary cross-entropy written out: from the logit, or from sigmoid(logit) (the paper)."""
    if loss == "paper-double-sigmoid":
        logit = tf.sigmoid(logit)
    p = tf.sigmoid(logit)
    return -(label * tf.math.log(p) + (1.0 - label) * tf.math.log(1.0 - p))


def explicit_per_example_grads(model, X, y, masks=None, loss="logits") -> list[np.ndarray]:
    """One GradientTape per example through the model's layers (with its dropout mask row);
    float64, stacked per variable."""
    rows = []
    for i, (xi, yi) in enumerate(zip(X, y, strict=True)):
        with tf.GradientTape() as tape:
            logit = forward(model, xi[None], None if masks is None else masks[i : i + 1])[0]
            value = bce(tf.constant(yi), logit, loss)
        rows.append([g.numpy().astype(np.float64) for g in tape.gradient(value, model.variables)])
    return [np.stack(parts) for parts in zip(*rows, strict=True)]


def batch_dropout(model, b, seed=(9, 9)):
    """The dropout mask the trainer would draw for a batch of b rows (None without dropout)."""
    return dropout_mask(model, b, tf.constant(seed, tf.int64))


def numpy_clipped_sum(per_example, clip, groups):
    """Sum over groups of the clipped mean gradient of each group (groups of example rows)."""
    total = [np.zeros(g.shape[1:]) for g in per_example]
    norms = []
    for group in groups:
        if len(group) == 0:
            continue
        means = [g[group].mean(axis=0) for g in per_example]
        norm = math.sqrt(sum(float(np.sum(m**2)) for m in means))
        norms.append(norm)
        factor = min(1.0, clip / norm)
        total = [t + factor * m for t, m in zip(total, means, strict=True)]
    return total, np.array(norms)


def assert_close(got, want, clip):
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g.numpy(), w, rtol=1e-5, atol=1e-7 * max(clip, 1e-2))


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
@pytest.mark.parametrize("clip_kind", ["all-clipped", "median", "none-clipped"])
@pytest.mark.parametrize("grouping", ["per-example", "pairs", "random-slots"])
def test_clipped_sum_equals_explicit_per_example_gradients(
    spec, clip_kind, grouping, loss="logits", p=48
):
    # 13 real examples padded to 16 rows; padding rows hold real-looking data that must be ignored.
    b, real = 16, 13
    X = genotypes(b, p, seed=1)
    y = np.random.default_rng(2).integers(0, 2, b).astype(np.float32)
    mask = np.r_[np.ones(real), np.zeros(b - real)].astype(np.float32)
    model = model_with_random_biases(spec, p, seed=3)
    engine = FastEngine(model, spec, loss=loss)
    drop = batch_dropout(model, b)
    assert (drop is None) == (spec.dropout == 0)
    masks = None if drop is None else drop.numpy()[:real]
    per_example = explicit_per_example_grads(model, X[:real], y[:real], masks, loss)
    if grouping == "per-example":
        segment_ids, num_segments = None, None
        groups = [[i] for i in range(real)]
    else:
        if grouping == "pairs":  # shuffle batches: consecutive pairs, last pair half padding
            ids = np.arange(b) // 2
            num_segments = b // 2
        else:  # Poisson slots: random, some slots empty, some with 3+ examples
            ids = np.random.default_rng(4).integers(0, 7, b)
            ids[ids == 5] = 6  # slot 5 left empty on purpose
            num_segments = 7
        segment_ids = tf.constant(ids, tf.int32)
        groups = [[i for i in range(real) if ids[i] == s] for s in range(num_segments)]
    _, unclipped_norms = numpy_clipped_sum(per_example, 1.0, groups)
    clip = {"all-clipped": 1e-4, "median": float(np.median(unclipped_norms)), "none-clipped": 1e4}
    clip = clip[clip_kind]
    batch = StepBatch(
        tf.constant(X), tf.constant(y), tf.constant(mask), drop, segment_ids, num_segments
    )
    result = engine.clipped_grad_sum(batch, clip)
    expected, norms = numpy_clipped_sum(per_example, clip, groups)
    if clip_kind == "all-clipped":
        assert np.all(norms > clip)
    elif clip_kind == "none-clipped":
        assert np.all(norms < clip)
    else:
        assert np.any(norms > clip * 1.001) and np.any(norms < clip * 0.999)
    assert_close(result.grad_sum, expected, clip)
    # Per-example logits and losses are returned for every row, padding included.
    logits = forward(model, tf.constant(X), drop).numpy()
    np.testing.assert_allclose(result.logits.numpy(), logits, rtol=1e-5, atol=1e-6)
    if drop is not None:  # the mask mattered: without it the logits differ
        assert not np.allclose(forward(model, tf.constant(X)).numpy(), logits, atol=1e-3)


@pytest.mark.parametrize("grouping", ["per-example", "random-slots"])
def test_clipped_sum_odd_length_and_double_sigmoid_loss(grouping):
    # Odd p: the pooling drops the last conv position, whose gradient must be zero.
    test_clipped_sum_equals_explicit_per_example_gradients(
        CNN_DROPOUT, "median", grouping, loss="paper-double-sigmoid", p=41
    )


@pytest.mark.parametrize("loss", ["logits", "paper-double-sigmoid"])
@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_mean_gradient_equals_tape_gradient_of_masked_mean_loss(spec, loss):
    b, p = 16, 40
    X = genotypes(b, p, seed=5)
    y = np.random.default_rng(6).integers(0, 2, b).astype(np.float32)
    mask = np.r_[np.ones(11), np.zeros(5)].astype(np.float32)
    model = model_with_random_biases(spec, p, seed=7)
    drop = batch_dropout(model, b)
    with tf.GradientTape() as tape:
        logits = forward(model, X[:11], None if drop is None else drop[:11])
        value = tf.reduce_mean(bce(y[:11], logits, loss))
    expected = [g.numpy() for g in tape.gradient(value, model.trainable_variables)]
    got = FastEngine(model, spec, loss=loss).mean_grad(
        StepBatch(tf.constant(X), tf.constant(y), tf.constant(mask), drop)
    )
    for g, w in zip(got.grads, expected, strict=True):
        np.testing.assert_allclose(g.numpy(), w, rtol=1e-5, atol=1e-7)


def test_double_sigmoid_residual_is_the_derivative_and_about_a_quarter_as_large():
    z = tf.constant(np.linspace(-30, 30, 6001), tf.float32)
    for label in (0.0, 1.0):
        y = tf.fill(z.shape, label)
        for loss in ("logits", "paper-double-sigmoid"):
            with tf.GradientTape() as tape:
                tape.watch(z)
                value = per_example_loss(y, z, loss)
            np.testing.assert_allclose(
                loss_gradient(y, z, loss).numpy(), tape.gradient(value, z).numpy(), atol=1e-6
            )
    y = tf.constant(np.r_[np.zeros(6001), np.ones(6001)], tf.float32)
    zz = tf.concat([z, z], axis=0)
    correct = np.abs(loss_gradient(y, zz, "logits").numpy()).max()
    paper = np.abs(loss_gradient(y, zz, "paper-double-sigmoid").numpy()).max()
    # |sigmoid(s) - y| < sigmoid(1) = 0.731 for s in (0, 1), and sigmoid' <= 1/4.
    assert correct == pytest.approx(1.0, abs=1e-6)
    assert 0.15 < paper <= 0.25 * 0.7311 * correct + 1e-6


def weights(model) -> list[np.ndarray]:
    return [w.copy() for w in model.get_weights()]


CONFIGS = {
    "poisson": dict(sampling="poisson"),
    "poisson-mb2": dict(sampling="poisson", microbatch_fraction=0.5),
    "shuffle": dict(sampling="shuffle"),
    "shuffle-mb2": dict(sampling="shuffle", microbatch_fraction=0.5),
    "poisson-paper-loss": dict(sampling="poisson", loss="paper-double-sigmoid"),
    "non-dp": dict(sampling="poisson", dp=False),
}


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
@pytest.mark.parametrize("name", list(CONFIGS))
def test_fast_and_reference_training_agree_with_noise_on(spec, name):
    # 2 epochs of 6 steps with noise, clipping that bites, and the L1 prox step: the two
    # engines share sampling, noise and updates, so the weights agree to float tolerance.
    n, p = 44, 48
    X = genotypes(n, p, seed=8)
    y = (X[:, :3].sum(axis=1) > 0).astype(int)
    spec = dataclasses.replace(spec, l1=0.01)
    config = TrainConfig(
        **{
            **dict(
                learning_rate=0.1,
                batch_size=8,
                epochs=2,
                dp=True,
                l2_clip=0.3,
                noise_multiplier=0.8,
                seed=11,
            ),
            **CONFIGS[name],
        }
    )
    fast = train_model(X, y, spec, dataclasses.replace(config, engine="fast"))
    reference = train_model(X, y, spec, dataclasses.replace(config, engine="reference"))
    initial = weights(train_model(X, y, spec, dataclasses.replace(config, epochs=0)).model)
    for got, want, start in zip(
        weights(fast.model), weights(reference.model), initial, strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
        assert not np.allclose(got, start)  # training moved every variable
    # What the accountant is told is identical.
    assert fast.steps == reference.steps == 2 * math.ceil(n / 8)
    assert fast.sampling_probability == reference.sampling_probability == 8 / n
    assert fast.microbatch_size == reference.microbatch_size == config.microbatch_size
    assert fast.sampling == reference.sampling
    assert np.array_equal(fast.batch_sizes, reference.batch_sizes)
    assert fast.engine == "fast" and reference.engine == "reference"
    np.testing.assert_allclose(fast.history["loss"], reference.history["loss"], rtol=1e-4)


def test_fast_is_registered_and_the_default():
    assert "fast" in training.available_engines()
    assert TrainConfig().engine == "fast"
    model = build_model(CNN, 32, seed=0)
    assert isinstance(training.make_engine("fast", model, CNN), FastEngine)


def authors_like(padding="same", pool_size=2, reshape=False) -> tf.keras.Model:
    """The CNN's layers with one setting changed."""
    inputs = tf.keras.Input(shape=(32,))
    if reshape:
        hidden = tf.keras.layers.Reshape((32, 1))(inputs)
    else:
        hidden = GenotypeOneHot(name="one_hot")(inputs)
    hidden = tf.keras.layers.Conv1D(4, 5, padding=padding, activation="relu", name="conv")(hidden)
    hidden = tf.keras.layers.AveragePooling1D(pool_size, name="pool")(hidden)
    hidden = tf.keras.layers.Dropout(0.5, name="dropout")(hidden)
    logit = tf.keras.layers.Dense(1, name="logit")(tf.keras.layers.Flatten()(hidden))
    return tf.keras.Model(inputs, logit)


def test_fast_engine_refuses_models_it_does_not_know():
    FastEngine(authors_like(), CNN)  # the model's own layers are accepted
    with pytest.raises(ValueError, match="padding"):
        FastEngine(authors_like(padding="valid"), CNN)
    with pytest.raises(ValueError, match="pool_size"):
        FastEngine(authors_like(pool_size=3), CNN)
    with pytest.raises(ValueError, match="layers"):
        FastEngine(authors_like(reshape=True), CNN)
    inputs = tf.keras.Input(shape=(32,))
    extra = tf.keras.layers.Dense(3, name="extra")(inputs)
    logit = tf.keras.layers.Dense(1, name="logit")(extra)
    with pytest.raises(ValueError, match="layers"):
        FastEngine(tf.keras.Model(inputs, logit), LASSO)
    sigmoid = tf.keras.layers.Dense(1, activation="sigmoid", name="logit")(inputs)
    with pytest.raises(ValueError, match="activation"):
        FastEngine(tf.keras.Model(inputs, sigmoid), LASSO)


def test_gaussian_noise_is_standard_normal_scaled_and_keyed_by_seed():
    draws = gaussian_noise(200_001, tf.constant([5, 9], tf.int64), 2.5).numpy()
    assert draws.shape == (200_001,)
    # 200k draws: s.e. of the mean 2.5/447 = 0.0056, of the std 0.4%.
    assert abs(draws.mean()) < 4 * 2.5 / math.sqrt(draws.size)
    assert draws.std() == pytest.approx(2.5, rel=0.016)
    assert stats.kstest(draws / 2.5, "norm").pvalue > 1e-3
    # cos and sin halves are independent of each other.
    half = (draws.size + 1) // 2
    assert abs(np.corrcoef(draws[: half - 1], draws[half:])[0, 1]) < 4 / math.sqrt(half)
    again = gaussian_noise(200_001, tf.constant([5, 9], tf.int64), 2.5).numpy()
    other = gaussian_noise(200_001, tf.constant([5, 10], tf.int64), 2.5).numpy()
    assert np.array_equal(draws, again)
    assert abs(np.corrcoef(draws, other)[0, 1]) < 4 / math.sqrt(draws.size)


def test_box_muller_is_not_truncated_and_matches_float64():
    # Uniforms next to 1: float64 resolves 1 - u down to 2^-52 (8.49 sigma); float32 could
    # not go beyond 1 - 2^-23 (5.65 sigma).
    u_radius = np.array([0.0, 1e-12, 0.3, 0.5, 0.9, 1 - 2.0**-30, 1 - 2.0**-45, 1 - 2.0**-52])
    u_angle = np.array([0.0, 0.1, 0.25, 0.4, 0.5, 0.7, 0.0, 0.5])
    draws = box_muller(u_radius, u_angle, 2.0).numpy()
    assert draws.dtype == np.float32 and draws.shape == (16,)
    radius = 2.0 * np.sqrt(-2.0 * np.log1p(-u_radius))
    angle = 2 * np.pi * u_angle
    expected = np.r_[radius * np.cos(angle), radius * np.sin(angle)]
    # float32 precision: relative 2e-6, and the float32 angle's ~1e-7 rad times radius 17.
    np.testing.assert_allclose(draws, expected, rtol=2e-6, atol=17 * 2e-7)
    assert np.abs(draws[6]) / 2.0 > 7.0  # 1 - u = 2^-45: 7.9 sigma
    assert np.abs(draws[7]) / 2.0 > 8.4


def test_gaussian_noise_tail_mass_mean_and_variance_over_ten_million_draws():
    n = 10_000_000
    draws = gaussian_noise(n, tf.constant([17, 3], tf.int64), 1.0).numpy().astype(np.float64)
    # P(|Z| > 4) = 6.334e-5: expected 633.4 draws, binomial s.d. 25.2; allow 4 s.d.
    tail = 2 * stats.norm.sf(4.0)
    expected = n * tail
    assert abs(np.sum(np.abs(draws) > 4.0) - expected) < 4 * math.sqrt(expected * (1 - tail))
    # Mean: s.e. 1/sqrt(n) = 3.2e-4; variance: s.e. sqrt(2/n) = 4.5e-4; allow 4 s.e.
    assert abs(draws.mean()) < 4 / math.sqrt(n)
    assert abs(draws.var() - 1.0) < 4 * math.sqrt(2 / n)


@pytest.mark.parametrize("sampling", ["poisson", "shuffle"])
@pytest.mark.parametrize("microbatch_fraction", [1.0, 0.5])
def test_epoch_plan_is_the_padded_epoch_batches(sampling, microbatch_fraction):
    n = 100
    config = TrainConfig(
        batch_size=12, dp=True, sampling=sampling, microbatch_fraction=microbatch_fraction, seed=3
    )
    plan = plan_epoch(n, config, epoch=2)
    batches = epoch_batches(n, config, 2)
    assert np.array_equal(plan.sizes, [len(b) for b in batches])
    slots = poisson_slots(n, 12, config.num_microbatches, 3, 2)
    for step, batch in enumerate(batches):
        start, stop = plan.offsets[step], plan.offsets[step + 1]
        length = stop - start
        assert length % PAD_MULTIPLE == 0 and length >= max(len(batch), 1)
        assert length < len(batch) + PAD_MULTIPLE or len(batch) == 0
        assert np.array_equal(plan.index[start : start + len(batch)], batch)
        assert np.all(plan.mask[start : start + len(batch)] == 1)
        assert np.all(plan.mask[start + len(batch) : stop] == 0)
        segments = plan.segments[start : start + len(batch)]
        if sampling == "poisson" and microbatch_fraction < 1:
            assert np.array_equal(segments, slots[step, batch])
        else:
            assert np.array_equal(segments, np.arange(len(batch)) // config.microbatch_size)


@pytest.mark.slow
def test_bench_prints_every_trainer_and_consistent_ratios(capsys):
    import argparse

    from dpmia_utils.devtools import bench

    args = argparse.Namespace(samples=48, variants=120, repeats=1, real_data=False)
    assert bench.main(args) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    models = [label for label, _ in bench.MODELS]
    medians = {
        (row[0], row[1]): float(row[2])
        for row in lines
        if len(row) >= 3 and row[0] in models and row[1] in bench.TRAINERS
    }
    assert set(medians) == {(m, t) for m in models for t in bench.TRAINERS}
    ratios = {
        row[0]: [float(v) for v in row[1:]] for row in lines if len(row) == 4 and row[0] in models
    }
    for model in models:
        fast_over_keras, tfp_over_fast, _ = ratios[model]
        assert fast_over_keras == pytest.approx(
            medians[(model, "fast-dp")] / medians[(model, "keras")], rel=0.05, abs=0.01
        )
        assert tfp_over_fast == pytest.approx(
            medians[(model, "tfp")] / medians[(model, "fast-dp")], rel=0.05, abs=0.1
        )
    assert any(row[:3] == ["paper", "profile:", "84"] for row in lines)
    # Held-out scoring: both models, ours and the Keras layers, positive seconds.
    start = next(i for i, row in enumerate(lines) if row[:2] == ["held-out", "scoring"])
    scoring = {row[0]: row for row in lines[start + 1 : start + 3]}
    assert set(scoring) == {"'lasso':", "'cnn':"}
    assert all(float(row[1].rstrip(",")) > 0 and float(row[5]) > 0 for row in scoring.values())
    # Every trainer's own peak RSS was measured in a subprocess (and exceeds the data alone).
    peaks = {
        (row[0], row[1]): float(row[4].replace(",", ""))  # after 1 timed epoch
        for row in lines
        if len(row) >= 5 and row[0] in models and row[1] in bench.TRAINERS
    }
    baseline = next(float(row[-2].replace(",", "")) for row in lines if row[:2] == ["(peak", "RSS"])
    assert all(peak > baseline for peak in peaks.values())

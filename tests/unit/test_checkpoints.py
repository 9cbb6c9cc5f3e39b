"""Prefix checkpoints: a training resumed from a saved prefix is bit-identical to one from scratch."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dpmia_utils.models import ModelSpec
from dpmia_utils.training import TrainConfig, checkpoints, train_model

CNN = ModelSpec("cnn", n_kernels=4, kernel_size=5, dropout=0.25)
LASSO = ModelSpec("lasso", l1=0.01)


def problem(n: int = 48, p: int = 30, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.choice(np.array([-1.0, 1.0], np.float32), size=(n, p))
    y = (X[:, :3].sum(axis=1) + 0.5 * rng.normal(size=n) > 0).astype(np.int64)
    return X, y


def config(epochs: int, **changes) -> TrainConfig:
    base = TrainConfig(
        learning_rate=0.05,
        batch_size=8,
        epochs=epochs,
        dp=True,
        noise_multiplier=0.8,
        l2_clip=1.0,
        sampling="shuffle",
        seed=3,
    )
    return dataclasses.replace(base, **changes)


def same_training(a, b) -> None:
    """Weights, history, batch sizes and step count equal to the last bit."""
    for wa, wb in zip(a.model.get_weights(), b.model.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    assert a.history == b.history
    np.testing.assert_array_equal(a.batch_sizes, b.batch_sizes)
    assert a.steps == b.steps


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv(checkpoints.DIR_ENV_VAR, str(tmp_path / "ckpt"))
    monkeypatch.setenv(checkpoints.EPOCHS_ENV_VAR, "3")
    return tmp_path / "ckpt"


def fresh(X, y, spec, cfg, monkeypatch, **kw):
    """The same training with no store."""
    with monkeypatch.context() as m:
        m.delenv(checkpoints.DIR_ENV_VAR, raising=False)
        return train_model(X, y, spec, cfg, **kw)


@pytest.mark.parametrize(
    ("spec", "changes"),
    [
        (CNN, {}),
        (LASSO, {"sampling": "poisson", "microbatch_fraction": 0.5}),
        (LASSO, {"dp": False}),
    ],
    ids=["cnn-dp-dropout", "lasso-dp-poisson-microbatches", "lasso-plain"],
)
def test_longer_training_resumes_from_the_shorter_one_bit_for_bit(
    store, monkeypatch, spec, changes
):
    X, y = problem()
    Xv, yv = problem(seed=1)
    short = train_model(X, y, spec, config(3, **changes), X_val=Xv, y_val=yv)
    assert short.resumed_epochs == 0 and (store).is_dir()
    long = train_model(X, y, spec, config(6, **changes), X_val=Xv, y_val=yv)
    assert long.resumed_epochs == 3
    same_training(long, fresh(X, y, spec, config(6, **changes), monkeypatch, X_val=Xv, y_val=yv))


def test_shorter_training_is_read_off_the_longer_one(store, monkeypatch):
    X, y = problem()
    train_model(X, y, CNN, config(6))  # saves epochs 3 (another run stops there) and 6
    assert sorted(p.name for p in store.glob("*/*.npz")) == ["epoch-3.npz", "epoch-6.npz"]
    short = train_model(X, y, CNN, config(3))
    assert short.resumed_epochs == 3
    same_training(short, fresh(X, y, CNN, config(3), monkeypatch))


@pytest.mark.parametrize(
    "other",
    [
        {"noise_multiplier": 1.0},
        {"seed": 4},
        {"batch_size": 16},
        {"learning_rate": 0.01},
        {"l2_clip": 0.6},
    ],
)
def test_a_training_with_other_settings_starts_from_scratch(store, other):
    X, y = problem()
    train_model(X, y, LASSO, config(3))
    assert train_model(X, y, LASSO, config(6, **other)).resumed_epochs == 0


def test_other_data_or_model_starts_from_scratch(store):
    X, y = problem()
    train_model(X, y, LASSO, config(3))
    X2 = X.copy()
    X2[0, 0] *= -1
    assert train_model(X2, y, LASSO, config(6)).resumed_epochs == 0
    assert train_model(X, 1 - y, LASSO, config(6)).resumed_epochs == 0
    assert train_model(X, y, dataclasses.replace(LASSO, l1=0.0), config(6)).resumed_epochs == 0
    # Validation data are part of the history, so of the key.
    Xv, yv = problem(seed=1)
    assert train_model(X, y, LASSO, config(6), X_val=Xv, y_val=yv).resumed_epochs == 0
    assert train_model(X, y, LASSO, config(6)).resumed_epochs == 3


def test_no_store_without_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(checkpoints.DIR_ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    X, y = problem()
    assert checkpoints.active_store() is None
    assert train_model(X, y, LASSO, config(2)).resumed_epochs == 0
    assert list(tmp_path.iterdir()) == []


def test_store_saves_only_where_asked_and_reads_the_longest_prefix(tmp_path):
    store = checkpoints.CheckpointStore(tmp_path, save_epochs=(2, 4))
    assert [e for e in range(1, 7) if store.should_save(e, 6)] == [2, 4, 6]
    w = [np.arange(3, dtype=np.float32)]
    for epoch in (2, 4):
        sizes = [np.full(3, 8, np.int32)] * epoch
        store.save(
            "k", checkpoints.Checkpoint(epoch, w, {"loss": [0.5] * epoch}, sizes, [0.1] * epoch)
        )
    assert store.latest("k", 3).epoch == 2
    assert store.latest("k", 9).epoch == 4
    assert store.latest("k", 1) is None and store.latest("other", 9) is None
    loaded = store.latest("k", 4)
    assert loaded.history["loss"] == [0.5] * 4 and loaded.history["val_loss"] == []
    assert len(loaded.batch_sizes) == 4 and loaded.batch_sizes[0].tolist() == [8, 8, 8]


def test_the_pipeline_sets_the_variables_this_module_reads():
    from dpmia_utils.pipeline import execute

    assert execute.CHECKPOINT_DIR_ENV_VAR == checkpoints.DIR_ENV_VAR
    assert execute.CHECKPOINT_EPOCHS_ENV_VAR == checkpoints.EPOCHS_ENV_VAR

"""Prefix checkpoints: a training of E epochs passes through the training of every e < E.

An epoch's batches, noise and dropout depend only on the seed and the epoch number
(:mod:`.sampling`, :mod:`.loop`), and SGD keeps no state beside the weights, so the weights
after epoch e of a 100-epoch training *are* the weights of the same training stopped at e.
The selection already reads its shorter candidates off one trajectory within a run; this
store does the same across runs, such as the paper's epochs {50, 100} at otherwise equal
settings: a training saves its weights and history at the epoch counts other runs stop at
(and at its own end), and a training that finds a saved prefix of itself loads the longest
one and trains only the remaining epochs (none, if the prefix is the whole training).

Results are bit-identical with and without the store (tests/unit/test_checkpoints.py): the
key covers everything a training's trajectory depends on (the training and validation arrays,
the model spec, every TrainConfig field but ``epochs``), and weights are stored as raw
float32. The store is off unless ``$DPMIA_CHECKPOINT_DIR`` names a folder (the pipeline sets
it per results root and code version, shared by the root's profiles, and
``$DPMIA_CHECKPOINT_EPOCHS`` to the profile's epoch counts); stale checkpoints of other code
are never read because the folder is per version.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dpmia_utils.models import ModelSpec
from dpmia_utils.training.config import TrainConfig

DIR_ENV_VAR = "DPMIA_CHECKPOINT_DIR"
EPOCHS_ENV_VAR = "DPMIA_CHECKPOINT_EPOCHS"
#: History keys saved with the weights (those of :func:`.result.empty_history`).
_HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")


@dataclass
class Checkpoint:
    """A training's state after ``epoch`` epochs, and what the epochs so far recorded."""

    epoch: int
    weights: list[np.ndarray]  # in model.get_weights() order
    history: dict[str, list[float]]
    batch_sizes: list[np.ndarray]  # one array per epoch
    epoch_seconds: list[float]


def _digest_array(h: Any, array: np.ndarray | None) -> None:
    if array is None:
        h.update(b"none")
        return
    array = np.ascontiguousarray(array)
    h.update(f"{array.dtype.str}{array.shape}".encode())
    h.update(memoryview(array).cast("B"))


def training_key(
    X: np.ndarray,
    y: np.ndarray,
    spec: ModelSpec,
    config: TrainConfig,
    X_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
) -> str:
    """What a training's trajectory depends on, except how long it runs."""
    h = hashlib.blake2b(digest_size=16)
    for array in (X, y, X_val, y_val):
        _digest_array(h, array)
    settings = {
        "spec": spec.to_dict(),
        "config": {k: v for k, v in dataclasses.asdict(config).items() if k != "epochs"},
    }
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return h.hexdigest()


class CheckpointStore:
    """Saved prefixes of trainings under ``root/<key>/epoch-<e>.npz``; writes are atomic."""

    def __init__(self, root: str | os.PathLike, save_epochs: tuple[int, ...] = ()) -> None:
        self.root = Path(root)
        self.save_epochs = frozenset(int(e) for e in save_epochs)

    def _path(self, key: str, epoch: int) -> Path:
        return self.root / key / f"epoch-{epoch}.npz"

    def should_save(self, epoch: int, last_epoch: int) -> bool:
        """Save after ``epoch`` epochs if another run stops there, or this training does."""
        return epoch == last_epoch or epoch in self.save_epochs

    def latest(self, key: str, max_epoch: int) -> Checkpoint | None:
        """The longest saved prefix of at most ``max_epoch`` epochs, or None."""
        folder = self.root / key
        if not folder.is_dir():
            return None
        saved = []
        for path in folder.glob("epoch-*.npz"):
            try:
                saved.append(int(path.stem.split("-", 1)[1]))
            except ValueError:
                continue
        usable = [e for e in saved if 0 < e <= max_epoch]
        return self.load(key, max(usable)) if usable else None

    def load(self, key: str, epoch: int) -> Checkpoint:
        with np.load(self._path(key, epoch)) as saved:
            n_weights = int(saved["n_weights"])
            weights = [saved[f"w{i}"] for i in range(n_weights)]
            history = {k: saved[f"h_{k}"].tolist() for k in _HISTORY_KEYS}
            sizes = saved["batch_sizes"]
            counts = saved["batch_counts"]
            offsets = np.r_[0, np.cumsum(counts)]
            batch_sizes = [sizes[offsets[i] : offsets[i + 1]] for i in range(counts.size)]
            seconds = saved["epoch_seconds"].tolist()
        return Checkpoint(epoch, weights, history, batch_sizes, seconds)

    def save(self, key: str, checkpoint: Checkpoint) -> Path:
        path = self._path(key, checkpoint.epoch)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f"w{i}": np.asarray(w) for i, w in enumerate(checkpoint.weights)}
        arrays["n_weights"] = np.asarray(len(checkpoint.weights))
        for k in _HISTORY_KEYS:
            arrays[f"h_{k}"] = np.asarray(checkpoint.history.get(k, []), dtype=np.float64)
        arrays["batch_sizes"] = (
            np.concatenate(checkpoint.batch_sizes) if checkpoint.batch_sizes else np.zeros(0)
        ).astype(np.int32)
        arrays["batch_counts"] = np.asarray([b.size for b in checkpoint.batch_sizes], np.int64)
        arrays["epoch_seconds"] = np.asarray(checkpoint.epoch_seconds, dtype=np.float64)
        # Two trainings of one key may save the same epoch at once: same bytes, last rename wins.
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
        return path


def active_store() -> CheckpointStore | None:
    """The store ``$DPMIA_CHECKPOINT_DIR`` names (saving at ``$DPMIA_CHECKPOINT_EPOCHS``), or None."""
    root = os.environ.get(DIR_ENV_VAR)
    if not root:
        return None
    epochs = os.environ.get(EPOCHS_ENV_VAR, "")
    return CheckpointStore(root, tuple(int(e) for e in epochs.split(",") if e.strip()))

"""Batch sampling, seeded and in numpy: which rows each step uses, as the accountant assumes.

``sampling="poisson"``: every training example is included in every step independently with
probability ``q = batch_size / n`` (batches have random size, possibly zero);
``sampling="shuffle"``: a seeded permutation per epoch cut into consecutive batches of
``batch_size`` (the last one may be smaller), which is what the paper's code did. Both take
``ceil(n / batch_size)`` steps per epoch, and an epoch's batches depend only on the seed and
the epoch number.

With Poisson batches and microbatches larger than one, each sampled example is assigned to
one of the ``batch_size / microbatch_size`` microbatch slots uniformly at random
(:func:`poisson_slots`), so adding or removing one individual changes one microbatch only;
with shuffle batches, microbatches are consecutive examples of the batch, as in
tensorflow-privacy. :func:`plan_epoch` lays an epoch out for the compiled training loop.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from dpmia_utils import seeds
from dpmia_utils.training.config import SEED_SAMPLING, TrainConfig

#: Batches are padded (with masked rows) to a multiple of this many examples.
PAD_MULTIPLE = 8


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Steps in one epoch: ``ceil(n / batch_size)`` for both sampling schemes."""
    return math.ceil(n / batch_size)


def _epoch_rng(seed: int, epoch: int, *tags: int) -> np.random.Generator:
    return seeds.generator(seeds.derive(seed, SEED_SAMPLING), epoch, *tags)


def poisson_masks(n: int, batch_size: int, seed: int, epoch: int) -> np.ndarray:
    """Boolean (steps, n) matrix: row s marks the examples in step s of ``epoch``.

    Every example joins every step independently with probability ``batch_size / n``.
    """
    rng = _epoch_rng(seed, epoch)
    return rng.random((steps_per_epoch(n, batch_size), n)) < (batch_size / n)


def poisson_slots(
    n: int, batch_size: int, num_microbatches: int, seed: int, epoch: int
) -> np.ndarray:
    """Int32 (steps, n) matrix: the microbatch slot each example would join at each step.

    Drawn uniformly and independently of the data, so adding or removing one individual
    never moves anyone else to another microbatch.
    """
    rng = _epoch_rng(seed, epoch, 1)
    shape = (steps_per_epoch(n, batch_size), n)
    return rng.integers(0, num_microbatches, size=shape, dtype=np.int32)


def shuffle_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The seeded permutation of ``range(n)`` cut into consecutive batches in ``epoch``."""
    return _epoch_rng(seed, epoch).permutation(n).astype(np.int32)


def epoch_batches(n: int, config: TrainConfig, epoch: int) -> list[np.ndarray]:
    """The training-row indices of every step of ``epoch`` (sorted for Poisson batches)."""
    if config.sampling == "poisson":
        masks = poisson_masks(n, config.batch_size, config.seed, epoch)
        return [np.flatnonzero(row).astype(np.int32) for row in masks]
    perm = shuffle_permutation(n, config.seed, epoch)
    return [perm[start : start + config.batch_size] for start in range(0, n, config.batch_size)]


class EpochPlan(NamedTuple):
    """Every step of one epoch as padded index batches, concatenated (computed in numpy).

    Step ``s`` covers rows ``offsets[s]:offsets[s + 1]`` of ``index``/``mask``/``segments``;
    its length is ``sizes[s]`` rounded up to a multiple of :data:`PAD_MULTIPLE` (at least
    one multiple, so an empty Poisson batch is a noise-only step). Padding rows point at
    training row 0 with mask 0. ``segments`` is each row's microbatch: its Poisson slot, or
    its position // microbatch size in a shuffle batch.
    """

    index: np.ndarray
    mask: np.ndarray
    segments: np.ndarray
    offsets: np.ndarray
    sizes: np.ndarray


def plan_epoch(n: int, config: TrainConfig, epoch: int) -> EpochPlan:
    """The padded batches of ``epoch``: exactly :func:`epoch_batches`, plus microbatch slots."""
    batches = epoch_batches(n, config, epoch)
    m = config.microbatch_size
    slots = None
    if config.sampling == "poisson" and config.dp and m > 1:
        slots = poisson_slots(n, config.batch_size, config.num_microbatches, config.seed, epoch)
    index, mask, segments = [], [], []
    sizes = np.array([len(batch) for batch in batches], dtype=np.int32)
    padded = np.maximum(-(-sizes // PAD_MULTIPLE), 1) * PAD_MULTIPLE
    for step, (batch, length) in enumerate(zip(batches, padded, strict=True)):
        pad = length - len(batch)
        index.append(np.concatenate([batch, np.zeros(pad, np.int32)]))
        mask.append(np.concatenate([np.ones(len(batch), np.float32), np.zeros(pad, np.float32)]))
        if slots is not None:
            segments.append(np.concatenate([slots[step, batch], np.zeros(pad, np.int32)]))
        else:
            segments.append(np.arange(length, dtype=np.int32) // m)
    offsets = np.concatenate([[0], np.cumsum(padded)]).astype(np.int32)
    return EpochPlan(
        index=np.concatenate(index).astype(np.int32),
        mask=np.concatenate(mask).astype(np.float32),
        segments=np.concatenate(segments).astype(np.int32),
        offsets=offsets,
        sizes=sizes,
    )

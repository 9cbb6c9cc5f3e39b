"""One seed scheme: every random stream is named by (seed, tag, ...) and drawn through here.

A tag is a small integer constant owned by the module that uses the stream; two streams with
different tags are independent (numpy's SeedSequence guarantees it), and the same
(seed, tags) always gives the same numbers.
"""

from __future__ import annotations

import numpy as np


def _entropy(seed: int, tags: tuple[int, ...]) -> list[int]:
    return [int(seed) & 0xFFFFFFFF, *(int(t) for t in tags)]


def generator(seed: int, *tags: int) -> np.random.Generator:
    """A numpy Generator for the stream (seed, *tags)."""
    return np.random.default_rng(np.random.SeedSequence(_entropy(seed, tags)))


def derive(seed: int, *tags: int) -> int:
    """A 31-bit integer seed for the stream (seed, *tags), for APIs that take an int."""
    return int(derive_many(seed, 1, *tags)[0])


def derive_many(seed: int, count: int, *tags: int) -> list[int]:
    """`count` independent 31-bit integer seeds for the stream (seed, *tags)."""
    state = np.random.SeedSequence(_entropy(seed, tags)).generate_state(count)
    return [int(s) & 0x7FFFFFFF for s in state]

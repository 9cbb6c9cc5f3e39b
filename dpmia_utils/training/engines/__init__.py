"""Gradient engines: the per-step sum of clipped microbatch gradients, computed by name.

:mod:`.base` (the interface and the clipping every engine must reproduce),
:mod:`.reference` (explicit per-example gradients), :mod:`.fast` (the default: the same sums
in closed form), :mod:`.registry` (``TrainConfig.engine`` -> engine).
"""

from dpmia_utils.training.engines.base import (
    BatchGradient,
    ClippedGradientEngine,
    ClippedGradSum,
    StepBatch,
    clip_and_sum,
)
from dpmia_utils.training.engines.fast import FastEngine
from dpmia_utils.training.engines.reference import ReferenceEngine
from dpmia_utils.training.engines.registry import (
    EngineFactory,
    available_engines,
    make_engine,
    register_engine,
)

__all__ = [
    "BatchGradient",
    "ClippedGradSum",
    "ClippedGradientEngine",
    "EngineFactory",
    "FastEngine",
    "ReferenceEngine",
    "StepBatch",
    "available_engines",
    "clip_and_sum",
    "make_engine",
    "register_engine",
]

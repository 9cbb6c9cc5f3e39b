"""Gradient engines by name: what ``TrainConfig.engine`` selects.

The built-in engines are registered here, at import: ``"fast"`` (the default,
:mod:`.fast`: closed-form and ghost-norm clipping without per-example gradients) and
``"reference"`` (:mod:`.reference`: explicit per-example gradients, the cross-check).
``"tfp-keras"`` is reserved: it names tensorflow-privacy's optimizer under ``model.fit``
(:mod:`dpmia_utils.training.tf_privacy`), which is not an engine.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from dpmia_utils.models import ModelSpec
from dpmia_utils.training.config import TF_PRIVACY_ENGINE
from dpmia_utils.training.engines.base import ClippedGradientEngine
from dpmia_utils.training.engines.fast import FastEngine
from dpmia_utils.training.engines.reference import ReferenceEngine

#: Called as ``factory(model, spec, loss=...)``; an engine class with the base signature fits.
EngineFactory = Callable[..., ClippedGradientEngine]
_ENGINES: dict[str, EngineFactory] = {}


def register_engine(name: str, factory: EngineFactory, *, overwrite: bool = False) -> None:
    """Make an engine available as ``TrainConfig(engine=name)``."""
    if name == TF_PRIVACY_ENGINE:
        raise ValueError(f"{TF_PRIVACY_ENGINE!r} is reserved for the tensorflow-privacy path")
    if name in _ENGINES and not overwrite:
        raise ValueError(f"engine {name!r} is already registered")
    _ENGINES[name] = factory


def available_engines() -> list[str]:
    """Names accepted by ``TrainConfig.engine`` (registered engines and ``tfp-keras``)."""
    return sorted(_ENGINES) + [TF_PRIVACY_ENGINE]


def make_engine(
    name: str, model: tf.keras.Model, spec: ModelSpec, loss: str = "logits"
) -> ClippedGradientEngine:
    """Instantiate the registered engine ``name`` for ``model`` and the training ``loss``."""
    if name not in _ENGINES:
        raise KeyError(f"unknown engine {name!r}; available: {available_engines()}")
    return _ENGINES[name](model, spec, loss=loss)


register_engine("reference", ReferenceEngine)
register_engine("fast", FastEngine)

"""Held-out scoring per CV epoch: ``evaluate`` beside the Keras layers (part of ``bench``).

Every CV epoch scores its held-out fold (376 rows on the real data) for the validation
history. :func:`time_scoring` times ``evaluate`` (``predict_logits``) on that many rows for the
Lasso and the as-coded CNN, beside the same model's Keras layers compiled (``model(x)``), the
path ``predict_logits`` took before it shared the training engine's CNN pass.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
import tensorflow as tf

from ..constants import YEAST_VARIANTS
from .bench import MODELS


def time_scoring(X: np.ndarray, y: np.ndarray, repeats: int) -> dict[str, tuple[float, float, int]]:
    """Per model: (seconds of ``evaluate``, seconds of the compiled Keras layers, rows scored),
    medians of ``repeats`` calls on the first rows of X (at most one held-out fold's)."""
    from ..models import ModelSpec, build_model
    from ..pipeline.estimate import REFERENCE_EVAL_CELLS
    from ..training import evaluate

    rows = min(X.shape[0], REFERENCE_EVAL_CELLS // YEAST_VARIANTS)
    X_val, y_val = np.ascontiguousarray(X[:rows]), y[:rows]
    timings: dict[str, tuple[float, float, int]] = {}
    for label in ("lasso", "cnn-coded"):
        model = build_model(ModelSpec(**dict(MODELS)[label]), X.shape[1], 0)
        keras = tf.function(
            lambda x, model=model: model(x, training=False),
            input_signature=[tf.TensorSpec([None, X.shape[1]], tf.float32)],
        )

        def keras_pass(keras: Any = keras) -> None:
            for start in range(0, rows, 32):  # predict_logits's chunks
                keras(X_val[start : start + 32]).numpy()

        def ours(model: Any = model) -> None:
            evaluate(model, X_val, y_val)

        seconds: dict[str, list[float]] = {"ours": [], "keras": []}
        ours(), keras_pass()  # warm-up: tracing
        for _ in range(repeats):
            for name, call in (("ours", ours), ("keras", keras_pass)):
                started = time.perf_counter()
                call()
                seconds[name].append(time.perf_counter() - started)
        timings[label] = (
            statistics.median(seconds["ours"]),
            statistics.median(seconds["keras"]),
            rows,
        )
    return timings

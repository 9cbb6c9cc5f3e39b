"""`python -m dpmia_utils bench`: plain and DP training epochs timed side by side in one process.

For each model (Lasso; CNN with 16 kernels of 9; CNN with 8 kernels of 5; the as-coded CNN, 8
kernels of 5 with dropout 0.25) and batch size 16,
on the same data (random +-1 genotypes of the requested shape, or the first rows of the real
yeast data), it times:

- ``keras``: plain Keras, ``model.fit`` with the SGD optimizer and BCE from logits (a);
- ``tfp``: tensorflow-privacy's ``VectorizedDPKerasSGDOptimizer`` under ``model.fit`` (b);
- ``fast-dp``: this package's trainer with engine ``fast``, DP-SGD (c);
- ``fast-plain``: the same trainer without DP.

Every trainer is warmed up (tracing, kernel selection) with one epoch first; the timed epochs
are then interleaved round-robin across the trainers of a model, so that load from other
processes on a shared machine hits all of them alike, and each figure is the median. Where a
tensorflow-privacy CNN epoch would take too long, a fixed number of steps is timed and scaled
to a full epoch (marked ``*``).

Memory: resident set size is what matters for TensorFlow (its allocations bypass
``tracemalloc``). Each trainer is also run for one epoch (or the same fixed number of steps)
in a fresh subprocess, two at a time, whose peak RSS (VmHWM) is its own peak; a subprocess
that only builds the data gives the baseline. The benchmark process's own ``ru_maxrss`` (all
trainers alive at once) is printed too.

Held-out scoring: every CV epoch scores its held-out fold (376 rows on the real data) for the
validation history. For the Lasso and the as-coded CNN, ``evaluate`` (``predict_logits``) is
timed on that many rows beside the same model's Keras layers compiled (``model(x)``), the
path ``predict_logits`` took before it shared the training engine's CNN pass
(:mod:`.held_out_scoring`).
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf

from .. import paths
from ..constants import AS_CODED_DATA, PAPER_TRAINING_ROWS, YEAST_VARIANTS
from ..stages.resources import peak_rss_bytes

BATCH_SIZE = 16
LEARNING_RATE = 0.01
L2_CLIP = 1.0
NOISE_MULTIPLIER = 1.0
#: tensorflow-privacy steps timed (and scaled to an epoch) when its CNN epoch would be slow.
TFP_CNN_STEPS = 12
MODELS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("lasso", {"kind": "lasso"}),
    ("cnn-16x9", {"kind": "cnn", "n_kernels": 16, "kernel_size": 9}),
    ("cnn-8x5", {"kind": "cnn", "n_kernels": 8, "kernel_size": 5}),
    # The authors' CNN as their MIA scripts ran it: 8 kernels of 5 and dropout 0.25.
    ("cnn-coded", {"kind": "cnn", "n_kernels": 8, "kernel_size": 5, "dropout": 0.25}),
)
#: The trainers timed for every model, in table order.
TRAINERS: tuple[str, ...] = ("keras", "tfp", "fast-dp", "fast-plain")


@dataclass
class Timed:
    """One trainer of one model: its epoch times and memory."""

    model: str
    name: str
    run_epoch: Callable[[int], float]  # epoch -> seconds for a full epoch (maybe scaled)
    note: str = ""
    seconds: list[float] = field(default_factory=list)
    peak_rss: int | None = None  # ru_maxrss of the trainer alone in a subprocess

    @property
    def median(self) -> float:
        """Median seconds per epoch over the timed epochs."""
        return statistics.median(self.seconds)


def bench_data(
    samples: int, variants: int, real_data: bool, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, str]:
    """The benchmark's training data (X float32 (n, p), y 0/1) and a description of it."""
    if real_data:
        from ..data import load_trait

        # The as-coded trait (1_Diamide_1 > 0, classes balanced), as the paper profile uses.
        coded = {k: v for k, v in AS_CODED_DATA.items() if k != "source"}
        trait = load_trait(coded.pop("trait"), **coded, progress=False)
        X = trait.features()[:samples, :variants]
        y = trait.labels[:samples].astype(np.float32)
        return X, y, f"real yeast data (as coded), first {X.shape[0]} rows x {X.shape[1]} variants"
    rng = np.random.default_rng(seed)
    X = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=(samples, variants))
    y = rng.integers(0, 2, samples).astype(np.float32)
    return X, y, f"random +-1 genotypes, {samples} x {variants}"


class _KerasEpochs:
    """``model.fit`` one epoch (or ``steps`` steps) at a time over resident, shuffled batches."""

    def __init__(
        self, X: tf.Tensor, y: tf.Tensor, spec: Any, dp: bool, steps: int | None, seed: int = 0
    ) -> None:
        from ..models import build_model

        n, p = int(X.shape[0]), int(X.shape[1])
        self.full_steps = -(-n // BATCH_SIZE)
        self.steps = min(steps or self.full_steps, self.full_steps)
        tf.keras.utils.set_random_seed(seed)
        self.model = build_model(spec, p, seed=seed)
        if dp:
            from tensorflow_privacy.privacy.optimizers.dp_optimizer_keras_vectorized import (
                VectorizedDPKerasSGDOptimizer,
            )

            optimizer = VectorizedDPKerasSGDOptimizer(
                l2_norm_clip=L2_CLIP,
                noise_multiplier=NOISE_MULTIPLIER,
                num_microbatches=None,
                learning_rate=LEARNING_RATE,
            )
            loss = tf.keras.losses.BinaryCrossentropy(
                from_logits=True, reduction=tf.keras.losses.Reduction.NONE
            )
        else:
            optimizer = tf.keras.optimizers.legacy.SGD(learning_rate=LEARNING_RATE)
            loss = tf.keras.losses.BinaryCrossentropy(from_logits=True)
        self.model.compile(optimizer=optimizer, loss=loss)
        self.dataset = (
            tf.data.Dataset.range(n)
            .shuffle(n, seed=seed, reshuffle_each_iteration=True)
            .batch(BATCH_SIZE)
            .map(lambda idx: (tf.gather(X, idx), tf.gather(y, idx)[:, None]))
            .repeat()
            .prefetch(2)
        )
        self.timer = _EpochTimer()

    def __call__(self, epoch: int) -> float:
        self.model.fit(
            self.dataset, epochs=1, steps_per_epoch=self.steps, verbose=0, callbacks=[self.timer]
        )
        return self.timer.seconds * self.full_steps / self.steps


class _EpochTimer(tf.keras.callbacks.Callback):
    """Seconds of the last epoch of ``model.fit`` (data-handler set-up excluded)."""

    seconds = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.seconds = time.perf_counter() - self._start


def _ours(X: np.ndarray, y: np.ndarray, spec: Any, dp: bool) -> Callable[[int], float]:
    from ..training import EpochTrainer, TrainConfig

    config = TrainConfig(
        learning_rate=LEARNING_RATE,
        batch_size=BATCH_SIZE,
        epochs=1,
        dp=dp,
        l2_clip=L2_CLIP,
        noise_multiplier=NOISE_MULTIPLIER,
        engine="fast",
    )
    trainer = EpochTrainer(X, y, spec, config)
    return lambda epoch: trainer.run_epoch(epoch).seconds


def make_trainer(
    label: str, name: str, X: np.ndarray, y: np.ndarray, X_t: tf.Tensor, y_t: tf.Tensor
) -> Timed:
    """Trainer ``name`` (one of :data:`TRAINERS`) for model ``label`` (one of :data:`MODELS`)."""
    from ..models import ModelSpec

    spec = ModelSpec(**dict(MODELS)[label])
    if name == "keras":
        return Timed(label, name, _KerasEpochs(X_t, y_t, spec, dp=False, steps=None))
    if name == "tfp":
        steps = TFP_CNN_STEPS if spec.kind == "cnn" else None
        note = f"* {steps} steps scaled to an epoch" if steps else ""
        return Timed(label, name, _KerasEpochs(X_t, y_t, spec, dp=True, steps=steps), note=note)
    if name in ("fast-dp", "fast-plain"):
        return Timed(label, name, _ours(X, y, spec, dp=name == "fast-dp"))
    raise ValueError(f"unknown trainer {name!r}")


def time_model(
    label: str,
    X: np.ndarray,
    y: np.ndarray,
    repeats: int,
    log: Callable[[str], None] = print,
) -> list[Timed]:
    """Build the trainers of one model, warm each up, then time them interleaved."""
    X_t, y_t = tf.constant(X), tf.constant(y)
    trainers = [make_trainer(label, name, X, y, X_t, y_t) for name in TRAINERS]
    for trainer in trainers:
        started = time.perf_counter()
        trainer.run_epoch(0)
        log(f"  {label}: {trainer.name} warmed up in {time.perf_counter() - started:.1f} s")
    for epoch in range(1, repeats + 1):
        for trainer in trainers:
            trainer.seconds.append(trainer.run_epoch(epoch))
    return trainers


def probe_memory(label: str, name: str, samples: int, variants: int, real_data: bool) -> int:
    """Peak RSS (bytes) of a fresh process that builds the data and runs one trainer's epoch.

    ``name == "data"`` builds only the data (and its resident tensor copy): the baseline.
    """
    command = [
        sys.executable,
        "-m",
        "dpmia_utils",
        "bench",
        "--probe",
        label,
        name,
        "--samples",
        str(samples),
        "--variants",
        str(variants),
    ]
    if real_data:
        command.append("--real-data")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return int(out.stdout.split()[-1])


def _probe(args: argparse.Namespace) -> int:
    label, name = args.probe
    X, y, _ = bench_data(args.samples, args.variants, args.real_data)
    X_t, y_t = tf.constant(X), tf.constant(y)
    if name != "data":
        make_trainer(label, name, X, y, X_t, y_t).run_epoch(0)
    print(peak_rss_bytes())
    return 0


def probe_all(results: list[Timed], args: argparse.Namespace) -> int:
    """Fill in every trainer's own peak RSS (two subprocesses at a time); return the baseline."""
    jobs = [("lasso", "data")] + [(t.model, t.name) for t in results]
    with ThreadPoolExecutor(max_workers=2) as pool:
        peaks = list(
            pool.map(
                lambda job: probe_memory(*job, args.samples, args.variants, args.real_data), jobs
            )
        )
    for trainer, peak in zip(results, peaks[1:], strict=True):
        trainer.peak_rss = peak
    return peaks[0]


def paper_estimate(costs: dict[tuple[str, bool], float]) -> tuple[int, float]:
    """Runs and estimated hours of the `paper` profile for per-epoch costs keyed (model, dp)."""
    from ..pipeline.estimate import estimate_run_seconds, shared_prefix_epochs
    from ..pipeline.profiles import load_profile

    profile = load_profile(paths.parameters_dir() / "paper.yml")
    runs = [r.params for r in profile.runs]
    seconds = sum(
        estimate_run_seconds(params, profile.blocks, costs, shared)
        for params, shared in zip(runs, shared_prefix_epochs(runs), strict=True)
    )
    return len(profile.runs), seconds / 3600


def _mb(value: int) -> str:
    return f"{value / 2**20:,.0f}"


def format_table(results: list[Timed], baseline: int | None = None) -> str:
    """The per-trainer table and the per-model ratios."""
    lines = [
        f"{'model':9s} {'trainer':10s} {'s/epoch':>9s} {'epochs (s)':28s} "
        f"{'peak RSS MB':>11s}  note"
    ]
    for t in results:
        each = " ".join(f"{s:.4g}" for s in t.seconds)
        peak = _mb(t.peak_rss) if t.peak_rss is not None else "-"
        lines.append(f"{t.model:9s} {t.name:10s} {t.median:9.4g} {each:28s} {peak:>11s}  {t.note}")
    if baseline is not None:
        lines.append(f"(peak RSS of a process holding only the data: {_mb(baseline)} MB)")
    lines.append("")
    lines.append(
        f"{'model':9s} {'c/a = fast-dp/keras':>20s} {'b/c = tfp/fast-dp':>18s} "
        f"{'fast-plain/keras':>17s}"
    )
    by_model: dict[str, dict[str, float]] = {}
    for t in results:
        by_model.setdefault(t.model, {})[t.name] = t.median
    for model, m in by_model.items():
        lines.append(
            f"{model:9s} {m['fast-dp'] / m['keras']:20.2f} {m['tfp'] / m['fast-dp']:18.1f} "
            f"{m['fast-plain'] / m['keras']:17.2f}"
        )
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    """Run the benchmark described in the module docstring; print the table; return 0.

    With ``args.probe`` (MODEL, TRAINER), only measure that trainer's peak memory (the
    subprocess `probe_memory` starts).
    """
    from ..pipeline.estimate import REFERENCE_CELLS, REFERENCE_EVAL_CELLS

    if getattr(args, "probe", None):
        return _probe(args)

    started = time.perf_counter()
    X, y, description = bench_data(args.samples, args.variants, args.real_data)
    n, p = X.shape
    threads = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()
    print(f"data: {description}; batch {BATCH_SIZE}; lr {LEARNING_RATE}; DP clip {L2_CLIP}, ")
    print(
        f"noise {NOISE_MULTIPLIER}, one example per microbatch, Poisson sampling (ours) / "
        f"shuffled batches (Keras); TF intra-op threads {threads}; {os.cpu_count()} CPUs"
    )
    print(f"median of {args.repeats} epochs after a warm-up epoch, interleaved across trainers")
    results: list[Timed] = []
    for label, _ in MODELS:
        results += time_model(label, X, y, args.repeats)
        gc.collect()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    baseline = probe_all(results, args)
    print()
    print(format_table(results, baseline))
    print(f"\nthis process's peak RSS (ru_maxrss, all trainers alive): {_mb(peak)} MB")

    scale = REFERENCE_CELLS / (n * p)
    median = {(t.model, t.name): t.median * scale for t in results}
    # The estimate's costs are for the CNN the paper profile runs (as coded: 8 x 5, dropout).
    ours = {
        ("lasso", False): median[("lasso", "fast-plain")],
        ("lasso", True): median[("lasso", "fast-dp")],
        ("cnn", False): median[("cnn-coded", "fast-plain")],
        ("cnn", True): median[("cnn-coded", "fast-dp")],
    }
    keras = {
        ("lasso", False): median[("lasso", "keras")],
        ("lasso", True): median[("lasso", "tfp")],
        ("cnn", False): median[("cnn-coded", "keras")],
        ("cnn", True): median[("cnn-coded", "tfp")],
    }
    print(
        f"\nseconds per epoch at the full real training fold ({PAPER_TRAINING_ROWS:,} x "
        f"{YEAST_VARIANTS:,}; scaled by cells),"
        " for estimate.DEFAULT_SECONDS_PER_EPOCH:"
    )
    for key, value in ours.items():
        print(f"  {key!r}: {value:.3f},")
    from .held_out_scoring import time_scoring

    scoring = time_scoring(X, y, args.repeats)
    print(
        f"\nheld-out scoring per CV epoch ({scoring['lasso'][2]} rows here; seconds scaled to "
        f"one real held-out fold, {REFERENCE_EVAL_CELLS // YEAST_VARIANTS} x "
        f"{YEAST_VARIANTS:,}), for estimate.DEFAULT_EVAL_SECONDS_PER_EPOCH:"
    )
    for label, (seconds, keras_seconds, rows) in scoring.items():
        factor = REFERENCE_EVAL_CELLS / (rows * p)
        print(
            f"  {label.split('-')[0]!r}: {seconds * factor:.3f},  "
            f"# Keras layers: {keras_seconds * factor:.3f} s ({keras_seconds / seconds:.1f}x)"
        )
    runs, hours = paper_estimate(ours)
    _, keras_hours = paper_estimate(keras)
    print(
        f"\npaper profile: {runs} runs; estimated {hours:.1f} h with engine 'fast' "
        f"({keras_hours:.1f} h at the Keras / tensorflow-privacy costs measured above); "
        "estimate = per run 30 s + (CV and search epochs x fold rows + attack-model epochs x "
        "attack rows) x seconds per epoch-row + held-out scoring per CV epoch (single worker)"
    )
    if args.real_data:
        from .run_overhead import run_overhead

        overhead = run_overhead("paper")
        print(
            f"\nper-run fixed overhead (paper profile, a fresh kernel importing the package and "
            f"loading the prepared data, twice per run): {overhead['per_run']:.1f} s "
            f"({overhead['per_kernel']:.1f} s per kernel)"
        )
    print(f"benchmark wall time: {time.perf_counter() - started:.0f} s")
    return 0

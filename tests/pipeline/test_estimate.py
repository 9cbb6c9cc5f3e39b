"""Dry-run time estimates: count the models a run trains and scale measured per-epoch costs."""

import pytest

from dpmia_utils.constants import PAPER_TRAINING_ROWS, YEAST_SEGREGANTS_MEASURED
from dpmia_utils.paths import parameters_dir
from dpmia_utils.pipeline.estimate import (
    DEFAULT_SECONDS_PER_EPOCH,
    OVERHEAD_SECONDS,
    estimate_run_seconds,
    models_per_run,
)
from dpmia_utils.pipeline.profiles import load_profile


def test_models_per_run_counts_folds_shadow_models_and_lira_references():
    blocks = load_profile(parameters_dir() / "paper.yml").blocks
    assert models_per_run(blocks) == 5 + 5 + 8  # folds + one shadow per repeat + K references
    no_lira = {**blocks, "attack": {**blocks["attack"], "attacks": ["shadow", "loss"]}}
    assert models_per_run(no_lira) == 10


def test_estimate_is_linear_in_epochs_and_uses_the_given_costs():
    profile = load_profile(parameters_dir() / "paper.yml")
    run = next(r.params for r in profile.runs if r.params["model"] == "lasso" and r.params["dp"])
    short = estimate_run_seconds({**run, "epochs": 50}, profile.blocks) - OVERHEAD_SECONDS
    long = estimate_run_seconds({**run, "epochs": 100}, profile.blocks) - OVERHEAD_SECONDS
    assert long == pytest.approx(2 * short)
    doubled = {k: 2 * v for k, v in DEFAULT_SECONDS_PER_EPOCH.items()}
    assert estimate_run_seconds({**run, "epochs": 50}, profile.blocks, doubled) - (
        OVERHEAD_SECONDS
    ) == pytest.approx(2 * short)
    # Full data: 5-fold training sets of 4276/2 * 4/5 individuals x 28,220 variants.
    per_epoch = (
        DEFAULT_SECONDS_PER_EPOCH[("lasso", True)]
        * (YEAST_SEGREGANTS_MEASURED / 2 * 4 / 5)
        / PAPER_TRAINING_ROWS
    )
    assert short == pytest.approx(models_per_run(profile.blocks) * 50 * per_epoch)

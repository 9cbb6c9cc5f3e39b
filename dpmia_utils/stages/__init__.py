"""The study's stages: what each notebook calls, from parameters to records.

Data flows one way: parameters (``params``) -> dataset and splits (``data_prep``, notebook 01)
-> training plan, fold models and the target record (``target``, notebook 02) -> attacks on
the fold models (:func:`dpmia_utils.attacks.attack_targets`) and the attack record
(``attack``, notebook 03). ``artifacts`` keeps what passes between stages in the run folder;
``resources`` measures what a stage cost. A researcher can call the same steps on their own
data without the notebooks.

The names below are loaded on first use, so that ``stages.params`` (the parameter schema the
command line checks a profile with) does not import TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "default_run_dir": "artifacts",
    "load_fold_models": "artifacts",
    "save_fold_models": "artifacts",
    "write_output": "artifacts",
    "attack_record": "attack",
    "StudySplits": "data_prep",
    "data_fingerprint": "data_prep",
    "load_dataset": "data_prep",
    "make_splits": "data_prep",
    "raw_archives": "data_prep",
    "slice_dataset": "data_prep",
    "synthetic_data_dir": "data_prep",
    "resolve_parameters": "params",
    "peak_rss_bytes": "resources",
    "peak_rss_mb": "resources",
    "TrainingPlan": "target",
    "converged_l1_row": "target",
    "fold_train_size": "target",
    "plan_training": "target",
    "released_model_accounting": "target",
    "target_record": "target",
    "train_target": "target",
    "trained_params": "target",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)


def __dir__() -> list[str]:
    return __all__

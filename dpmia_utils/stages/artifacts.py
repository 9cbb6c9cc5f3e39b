"""What the stages leave in a run folder: the fold models' weights and the JSON records.

Stage 02 saves each fold model (:func:`save_fold_models`) for stage 03 to rebuild
(:func:`load_fold_models`); every record is strict JSON written whole or not at all
(:func:`write_output`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dpmia_utils import paths
from dpmia_utils.jsonio import atomic_savez, atomic_write_json, jsonable


def save_fold_models(cv: Any, run_dir: str | Path) -> list[Path]:
    """Save each fold model's weights (npz) into the run folder, for the attack stage."""
    folder = Path(run_dir) / "models"
    saved = []
    for index, model in enumerate(cv.models):
        path = folder / f"fold{index}.npz"
        atomic_savez(path, {f"w{i}": w for i, w in enumerate(model.get_weights())})
        saved.append(path)
    return saved


def load_fold_models(run_dir: str | Path, plan: Any, n_features: int) -> list[Any]:
    """Rebuild the fold models saved by :func:`save_fold_models` (plan: a TrainingPlan)."""
    from dpmia_utils.models import build_model

    models = []
    for path in sorted((Path(run_dir) / "models").glob("fold*.npz"), key=lambda p: int(p.stem[4:])):
        model = build_model(plan.spec, n_features, seed=0)
        with np.load(path) as weights:
            model.set_weights([weights[f"w{i}"] for i in range(len(weights.files))])
        models.append(model)
    if not models:
        raise FileNotFoundError(f"no fold models in {Path(run_dir) / 'models'}: run stage 02 first")
    return models


def write_output(run_dir: str | Path, name: str, payload: dict[str, Any]) -> Path:
    """Write a stage's JSON output into the run folder atomically (strict JSON)."""
    path = Path(run_dir) / name
    atomic_write_json(path, jsonable(payload))
    return path


def default_run_dir(profile: str = "manual") -> Path:
    """Where a notebook run by hand (no run_dir parameter) writes: results/<profile>/scratch."""
    folder = paths.results_dir() / profile / "scratch"
    folder.mkdir(parents=True, exist_ok=True)
    return folder

"""Stage 01: from a data block to the prepared dataset and who is where (target, shadow, folds).

A data block names real yeast archives or a synthetic recipe; :func:`load_dataset` returns the
binarized trait (optionally a seeded slice, for fast profiles) and :func:`make_splits` the
target/shadow halves and the CV folds on the target half.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dpmia_utils import paths, seeds
from dpmia_utils.data import PreparedTrait, load_trait, locate_raw_data, raw_file_checksum
from dpmia_utils.splits import kfold_splits, target_shadow_split

SYNTHETIC_FORMAT_VERSION = 1

#: Seed-stream tag of the individuals a slice keeps.
_TAG_SLICE = 99


def _synthetic_recipe(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "n_samples": data["synthetic_samples"],
        "n_variants": data["synthetic_variants"],
        "seed": data["seed"],
        "version": SYNTHETIC_FORMAT_VERSION,
    }


def data_fingerprint(data: dict[str, Any]) -> str:
    """Checksum of the data a data block points at: raw archives, or the synthetic recipe."""
    if data["source"] == "synthetic":
        payload = json.dumps(_synthetic_recipe(data), sort_keys=True)
    else:
        archives = locate_raw_data(data.get("data_dir"))
        payload = json.dumps(
            [raw_file_checksum(archives.genotype), raw_file_checksum(archives.phenotype)]
        )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def synthetic_data_dir(data: dict[str, Any]) -> Path:
    """Write (once, atomically) the synthetic cross a data block describes; return its folder."""
    from dpmia_utils.data import simulate_cross, write_cross

    recipe = _synthetic_recipe(data)
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    folder = paths.cache_dir() / f"synthetic-{key}"
    if folder.is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".synthetic-{key}-", dir=folder.parent))
    cross = simulate_cross(
        n_samples=recipe["n_samples"],
        n_variants=recipe["n_variants"],
        seed=recipe["seed"],
        traits=("1_CopperSulfate_1", "1_Zeocin_1"),
    )
    write_cross(cross, partial)
    try:
        os.rename(partial, folder)
    except OSError:  # another process won the race: its copy is identical
        shutil.rmtree(partial, ignore_errors=True)
    return folder


def raw_archives(data: dict[str, Any]) -> Any:
    """The raw genotype/phenotype files a data block reads (data.RawArchives)."""
    if data["source"] == "synthetic":
        return locate_raw_data(synthetic_data_dir(data), download=False)
    return locate_raw_data(data.get("data_dir"))


def load_dataset(data: dict[str, Any], progress: bool = True) -> PreparedTrait:
    """The prepared trait a data block describes, optionally cut to a slice for fast profiles."""
    data_dir = synthetic_data_dir(data) if data["source"] == "synthetic" else data.get("data_dir")
    dataset = load_trait(
        data["trait"],
        data_dir,
        binarize=data["binarize"],
        threshold=data["threshold"],
        balance=data["balance"],
        seed=data["seed"],
        progress=progress,
    )
    return slice_dataset(dataset, data.get("max_samples"), data.get("max_variants"), data["seed"])


def slice_dataset(
    dataset: PreparedTrait, max_samples: int | None, max_variants: int | None, seed: int = 0
) -> PreparedTrait:
    """A seeded random subset of individuals and the first variants (a contiguous genome slice)."""
    rows = np.arange(dataset.n_samples)
    if max_samples is not None and max_samples < dataset.n_samples:
        rng = seeds.generator(seed, _TAG_SLICE)
        rows = np.sort(rng.choice(dataset.n_samples, size=max_samples, replace=False))
    cols = slice(0, max_variants)
    if rows.size == dataset.n_samples and max_variants is None:
        return dataset
    return dataclasses.replace(
        dataset,
        sample_ids=dataset.sample_ids[rows],
        variant_ids=dataset.variant_ids[cols],
        genotypes=np.ascontiguousarray(dataset.genotypes[rows][:, cols]),
        phenotype=dataset.phenotype[rows],
        labels=dataset.labels[rows],
        provenance={
            **dataset.provenance,
            "slice": {"max_samples": max_samples, "max_variants": max_variants, "seed": seed},
        },
    )


@dataclass(frozen=True)
class StudySplits:
    """Who is where: the private target half (with its CV folds) and the adversary's shadow half."""

    target: np.ndarray
    shadow: np.ndarray
    folds: list[tuple[np.ndarray, np.ndarray]]

    def describe(self) -> dict[str, Any]:
        """Sizes, for records and notebooks."""
        return {
            "n_target": int(self.target.size),
            "n_shadow": int(self.shadow.size),
            "folds": len(self.folds),
            "fold_train_sizes": [int(train.size) for train, _ in self.folds],
            "fold_test_sizes": [int(test.size) for _, test in self.folds],
        }


def make_splits(dataset: PreparedTrait, split: dict[str, Any]) -> StudySplits:
    """Stratified target/shadow halves and stratified k-fold CV on the target half."""
    halves = target_shadow_split(
        dataset.n_samples,
        seed=split["seed"],
        target_fraction=split["target_fraction"],
        labels=dataset.labels,
    )
    folds = kfold_splits(halves.target, k=split["folds"], seed=split["seed"], labels=dataset.labels)
    return StudySplits(target=halves.target, shadow=halves.shadow, folds=folds)

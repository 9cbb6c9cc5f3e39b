"""One trait, prepared for the models: binarized, balanced if asked, genotype calls imputed.

:func:`prepare_trait` turns a :class:`~dpmia_utils.data.cross.Cross` into a
:class:`PreparedTrait` (no missing values; labels 0/1 for value > mean, median or a threshold);
:func:`load_trait` is the cached front door the study calls: from the raw files (or the cache,
when the files' checksums and every option match) to the prepared trait.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dpmia_utils import seeds

from .cache import CACHE_FORMAT_VERSION, cache_folder, cache_key, load_npz, raw_checksums, save_npz
from .cross import Cross, load_cross_from
from .genotypes import MISSING, SampleVariantShape
from .locate import locate_raw_data
from .phenotypes import read_phenotype_traits
from .sources import DataError

logger = logging.getLogger(__name__)

_TRAIT_COLUMN = re.compile(r"^\d+_(.+)_\d+$")


def short_trait_name(column: str) -> str:
    """``1_CopperSulfate_1`` -> ``CopperSulfate``; other names are returned unchanged."""
    match = _TRAIT_COLUMN.match(column)
    return match.group(1) if match else column


def resolve_trait(name: str, available: Iterable[str], *, source: str | Path | None = None) -> str:
    """The phenotype column a trait name refers to (full or short name, case-insensitive)."""
    columns = list(available)
    if name in columns:
        return name
    wanted = name.strip().lower()
    hits = [c for c in columns if c.lower() == wanted]
    if not hits:
        hits = [c for c in columns if short_trait_name(c).lower() == wanted]
    prefix = f"{source}: " if source else ""
    if len(hits) > 1:
        raise DataError(f"{prefix}trait {name!r} is ambiguous: it matches {hits}")
    if not hits:
        raise DataError(
            f"{prefix}unknown trait {name!r}; available traits: "
            + ", ".join(short_trait_name(c) for c in columns)
        )
    return hits[0]


@dataclass(frozen=True, eq=False)
class PreparedTrait(SampleVariantShape):
    """One binarized trait with complete genotypes: what the target and shadow models train on."""

    _MATRIX = "genotypes"

    sample_ids: np.ndarray
    variant_ids: np.ndarray
    genotypes: np.ndarray  # int8 allele counts, no missing values
    phenotype: np.ndarray  # float64 raw trait values
    labels: np.ndarray  # int8 0/1: phenotype > threshold
    threshold: float
    trait: str
    ploidy: int
    provenance: dict[str, Any] = field(default_factory=dict)
    # features() per dtype, built once: the float32 matrix is 483 MB on the real data and the
    # stage notebooks ask for it several times.
    _features: dict[Any, np.ndarray] = field(default_factory=dict, init=False, repr=False)

    def features(self, dtype: Any = np.float32) -> np.ndarray:
        """Model input: ``2*count - 1`` for haploids (the file's ±1), ``count - 1`` for dosages.

        Built once per dtype and returned read-only (copy it to modify).
        """
        key = np.dtype(dtype)
        if key not in self._features:
            out = self.genotypes.astype(key)
            if self.ploidy == 1:
                out *= 2
            out -= 1
            out.flags.writeable = False
            self._features[key] = out
        return self._features[key]


_BINARIZE_RULES = ("mean", "median", "threshold")


def _check_preparation_options(binarize: str, threshold: float | None, impute: str) -> None:
    if binarize not in _BINARIZE_RULES:
        raise ValueError(f"binarize must be one of {_BINARIZE_RULES}, got {binarize!r}")
    if (binarize == "threshold") != (threshold is not None):
        raise ValueError("pass threshold=... exactly when binarize='threshold'")
    if impute not in ("mode", "none"):
        raise ValueError(f"impute must be 'mode' or 'none', got {impute!r}")


def prepare_trait(
    cross: Cross,
    trait: str = "CopperSulfate",
    *,
    binarize: str = "mean",
    threshold: float | None = None,
    balance: bool = False,
    seed: int = 0,
    impute: str = "mode",
) -> PreparedTrait:
    """Drop missing phenotypes, binarize (value > mean/median/threshold), balance, impute calls."""
    _check_preparation_options(binarize, threshold, impute)
    source = cross.archives.phenotype
    column = resolve_trait(trait, cross.phenotypes.columns, source=source)
    values = cross.phenotypes[column].to_numpy(dtype=np.float64)
    n_raw = values.size
    observed = ~np.isnan(values)
    n_missing = int(n_raw - observed.sum())
    if not observed.any():
        raise DataError(f"{source}: trait {column} is entirely missing ({n_raw} samples, all NA)")
    kept = values[observed]
    if np.all(kept == kept[0]):
        raise DataError(
            f"{source}: trait {column} is constant ({float(kept[0])!r} for all {kept.size} "
            f"samples with a value), so it cannot be binarized"
        )
    if binarize == "mean":
        cut = float(np.mean(kept))
    elif binarize == "median":
        cut = float(np.median(kept))
    else:
        cut = float(threshold)  # type: ignore[arg-type]
    rows = np.flatnonzero(observed)
    labels = (kept > cut).astype(np.int8)
    n_positive = int(labels.sum())
    if n_positive in (0, labels.size):
        raise DataError(
            f"{source}: binarizing trait {column} at {cut:g} ({binarize} rule) leaves one class "
            f"empty ({n_positive} above, {labels.size - n_positive} at or below)"
        )
    n_dropped_balance = 0
    if balance:
        minority = int(n_positive < labels.size - n_positive)  # the label of the smaller class
        minority_idx = np.flatnonzero(labels == minority)
        majority_idx = np.flatnonzero(labels != minority)
        rng = seeds.generator(seed)
        chosen = rng.choice(majority_idx, size=minority_idx.size, replace=False)
        selected = np.sort(np.concatenate([minority_idx, chosen]))
        n_dropped_balance = labels.size - selected.size
        rows, labels, kept = rows[selected], labels[selected], kept[selected]
    genotypes = cross.genotypes.counts[rows]
    uncalled = genotypes == MISSING
    n_imputed = int(uncalled.sum())
    n_all_missing = 0
    if n_imputed:
        if impute == "none":
            raise DataError(
                f"{cross.archives.genotype}: {n_imputed} genotype calls are missing among the "
                f"kept samples; use impute='mode'"
            )
        columns = np.flatnonzero(uncalled.any(axis=0))
        block = genotypes[:, columns]
        tallies = np.stack([(block == k).sum(axis=0) for k in range(cross.genotypes.ploidy + 1)])
        modes = tallies.argmax(axis=0).astype(np.int8)  # ties go to the smaller count
        n_all_missing = int((tallies.sum(axis=0) == 0).sum())
        block = np.where(block == MISSING, modes[None, :], block)
        genotypes[:, columns] = block
    provenance = {
        "raw_files": {
            "genotype": {
                "file": cross.archives.genotype.name,
                "sha256": cross.checksums["genotype"],
            },
            "phenotype": {
                "file": cross.archives.phenotype.name,
                "sha256": cross.checksums["phenotype"],
            },
        },
        "options": {
            "trait": column,
            "binarize": binarize,
            "threshold": threshold,
            "balance": balance,
            "seed": seed,
            "impute": impute,
            "coding": cross.genotypes.coding,
        },
        "overlap": dict(cross.overlap),
        "n_samples_raw": n_raw,
        "n_missing_phenotype": n_missing,
        "n_dropped_balance": n_dropped_balance,
        "n_dropped": n_raw - rows.size,
        "n_samples": int(rows.size),
        "n_imputed": n_imputed,
        "n_variants_all_missing": n_all_missing,
        "class_counts": {"0": int((labels == 0).sum()), "1": int((labels == 1).sum())},
        "threshold": cut,
    }
    return PreparedTrait(
        sample_ids=cross.genotypes.sample_ids[rows],
        variant_ids=cross.genotypes.variant_ids,
        genotypes=genotypes,
        phenotype=kept.astype(np.float64),
        labels=labels,
        threshold=cut,
        trait=column,
        ploidy=cross.genotypes.ploidy,
        provenance=provenance,
    )


_VARIANT_FORMS = (
    re.compile(
        r"^(?P<pos>\d+)_(?P<chr>[^_]+)_(?P<pos2>\d+)_(?P<ref>[A-Za-z*]+)_(?P<alt>[A-Za-z*]+)$"
    ),
    re.compile(r"^(?P<chr>[^_:]+)[_:](?P<pos>\d+)[_:](?P<ref>[A-Za-z*]+)[_:/](?P<alt>[A-Za-z*]+)$"),
    re.compile(r"^(?P<chr>[^_:]+)[_:](?P<pos>\d+)$"),
)


def parse_variant_ids(variant_ids: Iterable[str]) -> pd.DataFrame:
    """Chromosome, position, ref and alt of IDs like ``33070_chrI_33070_A_T``; NaN if unparsable."""
    records = []
    for variant in variant_ids:
        record: dict[str, Any] = {
            "variant_id": variant,
            "chromosome": np.nan,
            "position": np.nan,
            "ref": np.nan,
            "alt": np.nan,
        }
        for form in _VARIANT_FORMS:
            match = form.match(str(variant))
            if match:
                parts = match.groupdict()
                record.update(
                    chromosome=parts["chr"],
                    position=float(parts["pos"]),
                    ref=parts.get("ref", np.nan),
                    alt=parts.get("alt", np.nan),
                )
                break
        records.append(record)
    frame = pd.DataFrame.from_records(
        records, columns=["variant_id", "chromosome", "position", "ref", "alt"]
    )
    frame["position"] = frame["position"].astype(np.float64)
    return frame


_TRAIT_ARRAYS = ("sample_ids", "variant_ids", "genotypes", "phenotype", "labels")


def _trait_from_cache(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> PreparedTrait | None:
    n, p = arrays["genotypes"].shape
    consistent = (
        arrays["genotypes"].dtype == np.int8
        and arrays["labels"].dtype == np.int8
        and arrays["sample_ids"].shape == (n,)
        and arrays["variant_ids"].shape == (p,)
        and arrays["phenotype"].shape == (n,)
        and arrays["labels"].shape == (n,)
        and meta["provenance"]["n_samples"] == n
    )
    if not consistent:
        return None
    return PreparedTrait(
        sample_ids=arrays["sample_ids"],
        variant_ids=arrays["variant_ids"],
        genotypes=arrays["genotypes"],
        phenotype=arrays["phenotype"],
        labels=arrays["labels"],
        threshold=float(meta["threshold"]),
        trait=str(meta["trait"]),
        ploidy=int(meta["ploidy"]),
        provenance=meta["provenance"],
    )


def load_trait(
    trait: str = "CopperSulfate",
    data_dir: str | Path | None = None,
    *,
    binarize: str = "mean",
    threshold: float | None = None,
    balance: bool = False,
    seed: int = 0,
    coding: str = "auto",
    missing_codes: Iterable[int] = (),
    allow_partial_overlap: bool = False,
    cache: bool = True,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> PreparedTrait:
    """The prepared, binarized trait, from the cache when the raw files and options match."""
    _check_preparation_options(binarize, threshold, "mode")
    archives = locate_raw_data(data_dir)
    folder = cache_folder(cache_dir)
    checksums = raw_checksums(archives, folder)
    missing = tuple(sorted({int(c) for c in missing_codes}))
    column = resolve_trait(
        trait, read_phenotype_traits(archives.phenotype), source=archives.phenotype
    )
    options = {
        "trait": column,
        "binarize": binarize,
        "threshold": None if threshold is None else float(threshold),
        "balance": bool(balance),
        "seed": int(seed),
        "impute": "mode",
        "coding": coding,
        "missing_codes": list(missing),
        "allow_partial_overlap": bool(allow_partial_overlap),
    }
    key = cache_key({"kind": "trait", "checksums": checksums, "options": options})
    target = folder / f"trait-{short_trait_name(column)}-{key[:20]}.npz"
    if cache:
        started = time.perf_counter()
        hit = load_npz(target, key, _TRAIT_ARRAYS)
        prepared = _trait_from_cache(*hit) if hit is not None else None
        if prepared is not None:
            logger.info(
                "loaded %s from cache %s in %.2f s", column, target, time.perf_counter() - started
            )
            return prepared
        if hit is not None:
            logger.warning("cache file %s has inconsistent shapes; rebuilding it", target)
    if progress:
        logger.info("preparing %s from %s (cache miss)", column, archives.genotype)
    cross = load_cross_from(
        archives,
        checksums,
        coding=coding,
        missing=missing,
        allow_partial_overlap=allow_partial_overlap,
        progress=progress,
        cache=cache,
        cache_dir=folder,
    )
    prepared = prepare_trait(
        cross, column, binarize=binarize, threshold=threshold, balance=balance, seed=seed
    )
    prepared.provenance["options"].update(
        missing_codes=list(missing), allow_partial_overlap=bool(allow_partial_overlap)
    )
    prepared.provenance["cache_format_version"] = CACHE_FORMAT_VERSION
    prepared.provenance["dataset_key"] = key  # names this exact dataset: raw bytes + options
    if cache:
        save_npz(
            target,
            key,
            {name: getattr(prepared, name) for name in _TRAIT_ARRAYS},
            threshold=prepared.threshold,
            trait=prepared.trait,
            ploidy=prepared.ploidy,
            provenance=prepared.provenance,
        )
    return prepared

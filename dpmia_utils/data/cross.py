"""The cross: genotypes and phenotypes of the same segregants, aligned by sample ID.

:func:`load_cross` locates, checksums, parses and validates both raw files (the genotypes from
the cache when asked) and :func:`assemble_cross` aligns them, refusing files that list different
samples unless a partial overlap is explicitly allowed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .cache import cached_genotypes, raw_checksums
from .genotypes import GenotypeTable, read_genotypes
from .locate import RawArchives, locate_raw_data
from .phenotypes import read_phenotypes
from .sources import DataError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Cross:
    """Genotypes and phenotypes of the same samples, phenotype rows aligned to genotype order."""

    genotypes: GenotypeTable
    phenotypes: pd.DataFrame
    archives: RawArchives
    checksums: dict[str, str]  # sha256 of the genotype and phenotype files read
    overlap: dict[str, int]

    @property
    def sample_ids(self) -> np.ndarray:
        """Sample IDs in genotype-file order."""
        return self.genotypes.sample_ids

    @property
    def traits(self) -> list[str]:
        """The phenotype column names."""
        return list(self.phenotypes.columns)


def _overlap_counts(geno_ids: np.ndarray, pheno_ids: pd.Index) -> tuple[dict[str, int], list, list]:
    in_pheno = set(pheno_ids)
    in_geno = set(geno_ids.tolist())
    only_geno = [s for s in geno_ids.tolist() if s not in in_pheno]
    only_pheno = [s for s in pheno_ids if s not in in_geno]
    counts = {
        "n_genotype_samples": len(geno_ids),
        "n_phenotype_samples": len(pheno_ids),
        "n_both": len(geno_ids) - len(only_geno),
        "n_only_genotypes": len(only_geno),
        "n_only_phenotypes": len(only_pheno),
    }
    return counts, only_geno, only_pheno


def assemble_cross(
    genotypes: GenotypeTable,
    phenotypes: pd.DataFrame,
    archives: RawArchives,
    checksums: dict[str, str],
    *,
    allow_partial_overlap: bool = False,
) -> Cross:
    """Align phenotypes to genotype order by sample ID, checking that the sample sets agree."""
    overlap, only_geno, only_pheno = _overlap_counts(genotypes.sample_ids, phenotypes.index)
    files = f"{archives.genotype} and {archives.phenotype}"
    summary = (
        f"{overlap['n_only_genotypes']} only in genotypes (e.g. {only_geno[:3]}), "
        f"{overlap['n_only_phenotypes']} only in phenotypes (e.g. {only_pheno[:3]}), "
        f"{overlap['n_both']} in both"
    )
    if overlap["n_both"] == 0:
        raise DataError(f"{files} share no sample IDs: {summary}")
    if (only_geno or only_pheno) and not allow_partial_overlap:
        raise DataError(
            f"{files} list different samples: {summary}; pass allow_partial_overlap=True to use "
            f"the samples in both"
        )
    if only_geno:
        keep = np.flatnonzero(np.isin(genotypes.sample_ids, phenotypes.index.to_numpy()))
        genotypes = genotypes.subset(keep)
        logger.warning("%s: using the %d samples in both files (%s)", files, keep.size, summary)
    aligned = phenotypes.loc[genotypes.sample_ids.tolist()]
    aligned.index = pd.Index(genotypes.sample_ids.tolist(), dtype=object, name="sample_id")
    return Cross(genotypes, aligned, archives, dict(checksums), overlap)


def load_cross(
    data_dir: str | Path | None = None,
    *,
    coding: str = "auto",
    missing_codes: Iterable[int] = (),
    allow_partial_overlap: bool = False,
    progress: bool = False,
    cache: bool = False,
    cache_dir: str | Path | None = None,
) -> Cross:
    """Read and validate both raw files and align them by sample ID."""
    archives = locate_raw_data(data_dir)
    return load_cross_from(
        archives,
        raw_checksums(archives, cache_dir),
        coding=coding,
        missing=tuple(sorted({int(c) for c in missing_codes})),
        allow_partial_overlap=allow_partial_overlap,
        progress=progress,
        cache=cache,
        cache_dir=cache_dir,
    )


def load_cross_from(
    archives: RawArchives,
    checksums: dict[str, str],
    *,
    coding: str,
    missing: tuple[int, ...],
    allow_partial_overlap: bool,
    progress: bool,
    cache: bool,
    cache_dir: str | Path | None,
) -> Cross:
    """Parse (or, with ``cache``, load the cached) genotypes and the phenotypes; align them."""
    if cache:
        genotypes = cached_genotypes(
            archives.genotype, checksums["genotype"], coding, missing, cache_dir, progress
        )
    else:
        genotypes = read_genotypes(
            archives.genotype, coding=coding, missing_codes=missing, progress=progress
        )
    phenotypes = read_phenotypes(archives.phenotype)
    return assemble_cross(
        genotypes, phenotypes, archives, checksums, allow_partial_overlap=allow_partial_overlap
    )

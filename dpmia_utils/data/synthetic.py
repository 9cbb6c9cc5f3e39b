"""Synthetic yeast-like crosses: haploid segregants with linkage blocks and a polygenic trait.

:func:`simulate_cross` draws genotypes and phenotypes with a known genetic architecture;
:func:`write_cross` writes them in exactly the published file formats, so the whole data layer
(``load_trait(..., data_dir=folder)``) runs on them in tests and the smoke profile.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dpmia_utils import seeds

from .genotypes import MISSING, SampleVariantShape
from .locate import RawArchives
from .sources import GENOTYPE_FILE, PHENOTYPE_FILE

_ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII", "XIII", "XIV")
_ROMAN += ("XV", "XVI")
_BASES = np.array(list("ACGT"))

# The 82-byte AppleDouble header macOS zips carry as __MACOSX/._<name>; readers must skip it.
_APPLEDOUBLE = (
    b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        \x00\x02\x00\x00\x00\x09\x00\x00\x00\x32"
    b"\x00\x00\x00\x20\x00\x00\x00\x02\x00\x00\x00\x52\x00\x00\x00\x00" + b"\x00" * 42
)

#: File codes for allele counts 0 and 1 in each haploid coding ("NA" marks a missing call).
_WRITE_CODES = {"signed": ("-1", "1"), "paper": ("1", "2"), "binary": ("0", "1")}


@dataclass(frozen=True, eq=False)
class SyntheticCross(SampleVariantShape):
    """A simulated haploid cross with its known genetic architecture."""

    counts: np.ndarray  # int8 (n_samples, n_variants): 0 = BY allele, 1 = RM allele, -1 missing
    sample_ids: np.ndarray
    variant_ids: np.ndarray
    phenotypes: pd.DataFrame  # index sample IDs, one column per trait, NaN where missing
    causal_indices: dict[str, np.ndarray]  # per trait: variant columns with an effect
    causal_effects: dict[str, np.ndarray]  # per trait: effect on the ±1 coding, same order
    chromosome_of_variant: np.ndarray  # chromosome index (0-based) of each variant
    recombination_rate: float
    heritability: float

    @property
    def traits(self) -> list[str]:
        """Phenotype column names; the first is the primary trait."""
        return list(self.phenotypes.columns)

    @property
    def phenotype(self) -> np.ndarray:
        """Values of the primary (first) trait."""
        return self.phenotypes.iloc[:, 0].to_numpy()


def _sample_ids(n: int, style: str) -> np.ndarray:
    if style == "plate":  # like the real IDs: plate_well, 96 wells a plate
        return np.array([f"{i // 96 + 1:02d}_{i % 96 + 1:02d}" for i in range(n)])
    if style == "serial":
        return np.array([f"S{i + 1:04d}" for i in range(n)])
    raise ValueError(f"sample_id_style must be 'plate' or 'serial', got {style!r}")


def _variant_ids(rng: np.random.Generator, sizes: Sequence[int]) -> list[str]:
    ids = []
    for chrom, size in enumerate(sizes):
        name = f"chr{_ROMAN[chrom]}" if chrom < len(_ROMAN) else f"chr{chrom + 1}"
        positions = 1000 + np.cumsum(rng.integers(200, 5000, size))
        for position in positions:
            ref, alt = rng.choice(_BASES, size=2, replace=False)
            ids.append(f"{position}_{name}_{position}_{ref}_{alt}")
    return ids


def simulate_cross(
    n_samples: int = 200,
    n_variants: int = 600,
    n_chromosomes: int = 4,
    *,
    n_causal: int = 10,
    heritability: float = 0.6,
    recombination_rate: float = 0.02,
    seed: int = 0,
    traits: Sequence[str] = ("1_CopperSulfate_1",),
    missing_fraction: float = 0.0,
    missing_genotype_fraction: float = 0.0,
    sample_id_style: str = "plate",
) -> SyntheticCross:
    """Haploid segregants with Markov-chain linkage and polygenic traits of known heritability."""
    if not 0.0 <= heritability <= 1.0:
        raise ValueError(f"heritability must be in [0, 1], got {heritability}")
    if not 0.0 <= recombination_rate <= 0.5:
        raise ValueError(f"recombination_rate must be in [0, 0.5], got {recombination_rate}")
    if not 1 <= n_chromosomes <= n_variants:
        raise ValueError("need 1 <= n_chromosomes <= n_variants")
    if not 0 <= n_causal <= n_variants:
        raise ValueError("need 0 <= n_causal <= n_variants")
    if not (0.0 <= missing_fraction < 1.0 and 0.0 <= missing_genotype_fraction < 1.0):
        raise ValueError("missing fractions must be in [0, 1)")
    if len(set(traits)) != len(traits) or not traits:
        raise ValueError("traits must be a non-empty list of distinct names")
    rng = seeds.generator(seed)
    sizes = [len(block) for block in np.array_split(np.arange(n_variants), n_chromosomes)]
    blocks = []
    for size in sizes:
        # Each chromosome is a two-state Markov chain: the segregant inherits BY or RM at the
        # first variant with probability 1/2 and switches parent at each crossover.
        first = rng.integers(0, 2, size=(n_samples, 1))
        switches = rng.random((n_samples, size - 1)) < recombination_rate
        parity = np.concatenate([np.zeros((n_samples, 1), int), np.cumsum(switches, axis=1)], 1)
        blocks.append((first + parity) % 2)
    alleles = np.concatenate(blocks, axis=1).astype(np.int8)
    chromosome_of_variant = np.repeat(np.arange(n_chromosomes), sizes)

    centered = 2.0 * alleles - 1.0  # the model's ±1 coding; effects act on it
    columns: dict[str, np.ndarray] = {}
    causal_indices: dict[str, np.ndarray] = {}
    causal_effects: dict[str, np.ndarray] = {}
    for trait in traits:
        causal = np.sort(rng.choice(n_variants, size=n_causal, replace=False))
        effects = rng.normal(0.0, 1.0, size=n_causal)
        genetic = centered[:, causal] @ effects if n_causal else np.zeros(n_samples)
        genetic_var = float(np.var(genetic))
        if genetic_var == 0.0 or heritability == 0.0:
            values = rng.normal(0.0, 1.0, n_samples)
        else:
            noise_sd = np.sqrt(genetic_var * (1.0 - heritability) / heritability)
            values = genetic + rng.normal(0.0, noise_sd, n_samples)
        values = (values - values.mean()) / values.std()  # normalized, like the real growth data
        n_missing = int(round(missing_fraction * n_samples))
        if n_missing:
            values[rng.choice(n_samples, size=n_missing, replace=False)] = np.nan
        columns[trait] = values
        causal_indices[trait] = causal
        causal_effects[trait] = effects  # per unit of the ±1 coding, before standardizing

    counts = alleles.copy()
    if missing_genotype_fraction:
        counts[rng.random(counts.shape) < missing_genotype_fraction] = MISSING
    sample_ids = _sample_ids(n_samples, sample_id_style)
    variant_ids = np.array(_variant_ids(rng, sizes))
    phenotypes = pd.DataFrame(columns, index=pd.Index(sample_ids, dtype=object, name="sample_id"))
    return SyntheticCross(
        counts=counts,
        sample_ids=sample_ids,
        variant_ids=variant_ids,
        phenotypes=phenotypes,
        causal_indices=causal_indices,
        causal_effects=causal_effects,
        chromosome_of_variant=chromosome_of_variant,
        recombination_rate=recombination_rate,
        heritability=heritability,
    )


def genotype_text(cross: SyntheticCross, coding: str = "signed") -> str:
    """The genotype file's text: tab-separated, ``SAMID`` header, one row per sample."""
    if coding not in _WRITE_CODES:
        raise ValueError(f"coding must be one of {sorted(_WRITE_CODES)}, got {coding!r}")
    lookup = np.array([*_WRITE_CODES[coding], "NA"])  # index 2 (= -1 wrapped) is missing
    tokens = lookup[np.where(cross.counts == MISSING, 2, cross.counts)]
    lines = ["\t".join(["SAMID", *cross.variant_ids])]
    lines += [
        "\t".join([sample, *row]) for sample, row in zip(cross.sample_ids, tokens, strict=True)
    ]
    return "\n".join(lines) + "\n"


def phenotype_text(cross: SyntheticCross) -> str:
    """The phenotype file's text: CSV, empty first header cell, ``NA`` for missing values."""
    lines = [",".join(["", *cross.phenotypes.columns])]
    for sample, row in zip(cross.phenotypes.index, cross.phenotypes.to_numpy(), strict=True):
        cells = ["NA" if np.isnan(v) else repr(float(v)) for v in row]
        lines.append(",".join([str(sample), *cells]))
    return "\n".join(lines) + "\n"


def _write_zip(target: Path, member: str, text: str) -> None:
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, text)
        archive.writestr(f"__MACOSX/._{member}", _APPLEDOUBLE)


def write_cross(
    cross: SyntheticCross, folder: str | Path, *, coding: str = "signed", zipped: bool = True
) -> RawArchives:
    """Write the cross in the published formats (zipped with a stray ``__MACOSX/`` entry)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    genotypes, phenotypes = genotype_text(cross, coding), phenotype_text(cross)
    if zipped:
        archives = RawArchives(folder / f"{GENOTYPE_FILE}.zip", folder / f"{PHENOTYPE_FILE}.zip")
        _write_zip(archives.genotype, GENOTYPE_FILE, genotypes)
        _write_zip(archives.phenotype, PHENOTYPE_FILE, phenotypes)
    else:
        archives = RawArchives(folder / GENOTYPE_FILE, folder / PHENOTYPE_FILE)
        archives.genotype.write_text(genotypes)
        archives.phenotype.write_text(phenotypes)
    return archives

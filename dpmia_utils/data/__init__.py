"""The genomic data layer: find, read, validate, prepare and cache the yeast cross.

In the order data flows: :mod:`.locate` finds the raw files (downloading them if need be),
:mod:`.sources` reads their bytes as text, :mod:`.genotypes` and :mod:`.phenotypes` parse the
two files, :mod:`.cross` aligns them by sample, :mod:`.traits` prepares one binarized trait for
the models and :func:`load_trait` (the front door) does all of it through :mod:`.cache`.
:mod:`.synthetic` simulates crosses in the same file formats for tests and the smoke profile.
Every problem with the input is a :class:`DataError` whose message names the file, the line or
sample, and the problem.
"""

from .cache import raw_file_checksum
from .cross import Cross, assemble_cross, load_cross
from .genotypes import MISSING, GenotypeTable, read_genotypes
from .locate import RawArchives, locate_raw_data, sha256_file
from .phenotypes import read_phenotype_traits, read_phenotypes
from .sources import GENOTYPE_FILE, PHENOTYPE_FILE, DataError
from .synthetic import SyntheticCross, simulate_cross, write_cross
from .traits import (
    PreparedTrait,
    load_trait,
    parse_variant_ids,
    prepare_trait,
    resolve_trait,
    short_trait_name,
)

__all__ = [
    "load_trait",
    "PreparedTrait",
    "DataError",
    "RawArchives",
    "locate_raw_data",
    "sha256_file",
    "GENOTYPE_FILE",
    "PHENOTYPE_FILE",
    "MISSING",
    "GenotypeTable",
    "read_genotypes",
    "read_phenotypes",
    "read_phenotype_traits",
    "Cross",
    "load_cross",
    "assemble_cross",
    "raw_file_checksum",
    "prepare_trait",
    "resolve_trait",
    "short_trait_name",
    "parse_variant_ids",
    "SyntheticCross",
    "simulate_cross",
    "write_cross",
]

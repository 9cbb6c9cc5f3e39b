"""The genotype file: tab-separated codes per sample and variant, parsed into allele counts.

A vectorized parser reads the published file (single-digit codes) in seconds; anything unusual
falls back to a careful line-by-line parser that names the exact cell of any error. The coding
(signed -1/1 as published, the paper's 1/2, binary 0/1 or dosage 0/1/2) is inferred from the
codes present or declared, and every call becomes an int8 count of the RM/alt allele.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .sources import (
    GENOTYPE_FILE,
    NON_BLANK,
    DataError,
    check_unique,
    decode,
    normalize_text_bytes,
    read_source,
    row_sample_id,
)

logger = logging.getLogger(__name__)

#: The in-memory code of a missing genotype call in allele counts.
MISSING: int = -1

#: Genotype codings: the codes each accepts and the allele count (of the RM/alt allele) of each.
CODINGS: dict[str, dict[int, int]] = {
    "signed": {-1: 0, 1: 1},  # the published file: -1 = BY allele, 1 = RM allele
    "paper": {1: 0, 2: 1},  # the paper's description: 1 = BY, 2 = RM
    "binary": {0: 0, 1: 1},
    "dosage": {0: 0, 1: 1, 2: 2},
}
_PLOIDY = {"signed": 1, "paper": 1, "binary": 1, "dosage": 2}
_MISSING_TOKENS = frozenset({"", "NA", "NaN", "nan"})
_INTEGER_TOKEN = re.compile(r"[+-]?\d+")
_RAW_MISSING = -128  # sentinel for a missing cell in the raw (not yet decoded) code matrix
_FAST_PATH_ROWS_PER_CHUNK = 64


class SampleVariantShape:
    """``n_samples`` and ``n_variants`` of a class holding a (samples x variants) matrix.

    The matrix is the attribute named by ``_MATRIX``; genotype tables, prepared traits and
    synthetic crosses share this one definition.
    """

    _MATRIX = "counts"

    @property
    def n_samples(self) -> int:
        """Number of samples (rows)."""
        return int(getattr(self, self._MATRIX).shape[0])

    @property
    def n_variants(self) -> int:
        """Number of variants (columns)."""
        return int(getattr(self, self._MATRIX).shape[1])


@dataclass(frozen=True, eq=False)
class GenotypeTable(SampleVariantShape):
    """A parsed genotype file: int8 counts of the RM/alt allele per sample and variant."""

    sample_ids: np.ndarray
    variant_ids: np.ndarray
    counts: np.ndarray  # int8 (n_samples, n_variants); MISSING (-1) where not called
    ploidy: int
    coding: str
    source: Path

    def subset(self, rows: np.ndarray) -> GenotypeTable:
        """The same table restricted to the given row indices (in that order)."""
        return GenotypeTable(
            self.sample_ids[rows],
            self.variant_ids,
            self.counts[rows],
            self.ploidy,
            self.coding,
            self.source,
        )


@dataclass
class _RawGenotypes:
    sample_ids: list[str]
    variant_ids: list[str]
    codes: np.ndarray  # int8 raw file codes, _RAW_MISSING where missing
    line_numbers: np.ndarray | None  # file line of each row; None means row i is on line i + 2


class _FastPathUnsuitable(Exception):
    """The vectorized parser met something it does not handle; use the careful parser."""


def _parse_genotype_header(header: str, label: str) -> list[str]:
    """The variant IDs of a genotype header line, validated."""
    if not header.strip():
        raise DataError(f"{label}: line 1 (the header) is blank")
    cells = header.split("\t")
    if len(cells) < 2:
        if "," in header:
            raise DataError(
                f"{label}: the header on line 1 has no tabs but has commas; the genotype file "
                f"must be tab-separated"
            )
        raise DataError(f"{label}: the header on line 1 has no variant columns after the ID")
    variant_ids = [cell.strip() for cell in cells[1:]]
    looks_like_codes = all(_INTEGER_TOKEN.fullmatch(v) or v in _MISSING_TOKENS for v in variant_ids)
    if looks_like_codes and len(set(variant_ids)) < len(variant_ids):
        raise DataError(
            f"{label}: line 1 looks like genotype data, not a header; the file must start with "
            f"a header line: SAMID, then one variant ID per column"
        )
    empty = [i + 2 for i, v in enumerate(variant_ids) if not v]
    if empty:
        raise DataError(f"{label}: line 1 (header): empty variant ID in column(s) {empty[:5]}")
    check_unique(variant_ids, label, "variant ID", "header column")
    return variant_ids


def _parse_fast(
    body: np.ndarray, n_variants: int, desc: str, progress: bool
) -> tuple[list[bytes], np.ndarray]:
    """Vectorized parse of rows of single-digit codes (optionally negative), ``NA`` or empty."""
    from tqdm import tqdm

    end = body.size
    while end > 0 and body[end - 1] == 10:
        end -= 1
    if end == 0:
        return [], np.empty((0, n_variants), np.int8)
    line_ends = np.flatnonzero(body[:end] == 10)
    line_ends = np.append(line_ends, end)  # the last line ends where the trailing LFs begin
    n_rows = line_ends.size
    codes = np.empty((n_rows, n_variants), np.int8)
    id_bytes: list[bytes] = []
    fields = n_variants + 1
    start = 0
    with tqdm(total=n_rows, unit="rows", desc=desc, disable=not progress) as bar:
        for r0 in range(0, n_rows, _FAST_PATH_ROWS_PER_CHUNK):
            r1 = min(n_rows, r0 + _FAST_PATH_ROWS_PER_CHUNK)
            stop = int(line_ends[r1 - 1])
            if r1 == n_rows:  # give the last line a terminator
                segment = np.empty(stop - start + 1, np.uint8)
                segment[:-1] = body[start:stop]
                segment[-1] = 10
            else:
                segment = body[start : stop + 1]
            # int32 positions halve the memory traffic of the passes below (segments are small)
            separators = np.flatnonzero((segment == 9) | (segment == 10)).astype(np.int32)
            k = r1 - r0
            if separators.size != k * fields:
                raise _FastPathUnsuitable("ragged or blank rows")
            separators = separators.reshape(k, fields)
            if not np.array_equal(separators[:, -1] + start, line_ends[r0:r1]):
                raise _FastPathUnsuitable("ragged rows")
            row_starts = np.empty(k, np.int32)
            row_starts[0] = 0
            row_starts[1:] = separators[:-1, -1] + 1
            if np.any(separators[:, 0] == row_starts):
                raise _FastPathUnsuitable("empty sample ID")
            id_bytes.extend(
                segment[a:b].tobytes() for a, b in zip(row_starts, separators[:, 0], strict=True)
            )
            token_starts = separators[:, :-1] + 1
            token_ends = separators[:, 1:]
            length = token_ends - token_starts
            last = segment[token_ends - 1]
            first = segment[token_starts]
            digit = last - np.uint8(48)  # wraps around for non-digits, so digits are exactly <= 9
            is_digit = digit <= 9
            negative = (length == 2) & (first == 45)  # "-d"
            values = digit.view(np.int8)
            if not np.all(is_digit & ((length == 1) | negative)):
                missing = (length == 0) | ((length == 2) & (first == 78) & (last == 65))  # "NA"
                if not np.all((is_digit & ((length == 1) | negative)) | missing):
                    raise _FastPathUnsuitable("tokens other than one digit, -digit, NA or empty")
                values[missing] = _RAW_MISSING
            np.negative(values, out=values, where=negative)
            codes[r0:r1] = values
            start = stop + 1
            bar.update(k)
    return id_bytes, codes


def _parse_careful(
    text: str, n_variants: int, variant_ids: list[str], label: str, missing_codes: frozenset[int]
) -> _RawGenotypes:
    """Line-by-line parse that accepts every valid form and names the exact cell of any error."""
    lines = text.split("\n")
    sample_ids: list[str] = []
    line_numbers: list[int] = []
    rows: list[np.ndarray] = []
    for offset, line in enumerate(lines[1:]):
        line_number = offset + 2
        if not line.strip():
            continue  # blank lines (e.g. at the end of the file) carry no sample
        cells = line.split("\t")
        sample = row_sample_id(cells, n_variants, label, line_number, "tab", "variant")
        lookup: dict[str, int] = {}
        problems: dict[str, str] = {}
        for token in set(cells[1:]):
            stripped = token.strip()
            if stripped in _MISSING_TOKENS:
                lookup[token] = _RAW_MISSING
            elif not _INTEGER_TOKEN.fullmatch(stripped):
                problems[token] = (
                    f"non-numeric genotype token {token!r} (expected an integer code, NA or an "
                    f"empty cell)"
                )
            elif int(stripped) in missing_codes:
                lookup[token] = _RAW_MISSING
            elif -127 <= int(stripped) <= 127:
                lookup[token] = int(stripped)
            else:
                problems[token] = f"genotype code {int(stripped)} is not valid in any coding"
        if problems:  # report the leftmost bad cell of the line
            column = min(cells.index(token, 1) for token in problems)
            raise DataError(
                f"{label}: line {line_number}, column {column + 1} (variant "
                f"{variant_ids[column - 1]}), sample {sample}: {problems[cells[column]]}"
            )
        rows.append(np.fromiter((lookup[t] for t in cells[1:]), np.int8, count=n_variants))
        sample_ids.append(sample)
        line_numbers.append(line_number)
    codes = np.vstack(rows) if rows else np.empty((0, n_variants), np.int8)
    return _RawGenotypes(sample_ids, variant_ids, codes, np.asarray(line_numbers))


def _parse_genotype_bytes(
    data: bytes, label: str, missing_codes: frozenset[int], progress: bool
) -> _RawGenotypes:
    """Header and rows of a genotype file, fast path first, careful path on anything unusual."""
    data = normalize_text_bytes(data, label)
    if not NON_BLANK.search(data):
        raise DataError(f"{label}: the genotype file is empty")
    header_end = data.find(b"\n")
    header_end = len(data) if header_end < 0 else header_end
    variant_ids = _parse_genotype_header(decode(data[:header_end], label, "line 1"), label)
    if not NON_BLANK.search(data, header_end + 1):
        raise DataError(f"{label}: the genotype file has a header but no sample rows")
    body = np.frombuffer(data, np.uint8)[header_end + 1 :]
    try:
        id_bytes, codes = _parse_fast(body, len(variant_ids), "parsing genotypes", progress)
        sample_ids = [
            decode(raw, label, f"the sample ID on line {i + 2}").strip()
            for i, raw in enumerate(id_bytes)
        ]
        if any(not s for s in sample_ids):
            raise _FastPathUnsuitable("blank sample ID")
        raw = _RawGenotypes(sample_ids, variant_ids, codes, None)
    except _FastPathUnsuitable as reason:
        logger.info("%s: using the careful parser (%s)", label, reason)
        text = decode(data, label, "the file")
        raw = _parse_careful(text, len(variant_ids), variant_ids, label, missing_codes)
    if missing_codes:
        in_range = [c for c in missing_codes if -127 <= c <= 127]
        if in_range:
            raw.codes[np.isin(raw.codes, in_range)] = _RAW_MISSING
    check_unique(raw.sample_ids, label, "sample ID", "line", raw.line_numbers)
    return raw


def _locate(raw: _RawGenotypes, row: int, col: int, label: str | None) -> str:
    line = int(raw.line_numbers[row]) if raw.line_numbers is not None else row + 2
    variant, sample = raw.variant_ids[col], raw.sample_ids[row]
    cell = f"line {line}, column {col + 2} (variant {variant}), sample {sample}"
    return f"{label}: {cell}" if label else cell


def _first_cell_outside(raw: _RawGenotypes, allowed: Iterable[int]) -> tuple[int, int]:
    bad = ~np.isin(raw.codes, [*allowed, _RAW_MISSING])
    row = int(np.argmax(bad.any(axis=1)))
    return row, int(np.argmax(bad[row]))


def _infer_coding(raw: _RawGenotypes, present: set[int], label: str) -> str:
    """The coding implied by the set of observed codes, or a DataError for mixed/ambiguous ones."""
    supported = {-1, 0, 1, 2}
    if not present:
        raise DataError(f"{label}: every genotype call is missing; cannot infer the coding")
    unknown = present - supported
    if unknown:
        row, col = _first_cell_outside(raw, supported)
        raise DataError(
            f"{_locate(raw, row, col, label)}: genotype code {raw.codes[row, col]} is not part of "
            f"any supported coding (signed -1/1, paper 1/2, binary 0/1, dosage 0/1/2); if it "
            f"marks a missing call, pass missing_codes=({raw.codes[row, col]},)"
        )
    if -1 in present:
        coding = "signed"
    elif 0 in present and 2 in present:
        coding = "dosage"
    elif 2 in present:
        coding = "paper"
    elif 0 in present:
        coding = "binary"
    else:
        coding = "ambiguous"
    allowed = set(CODINGS.get(coding, {}))
    if coding == "ambiguous" or (len(present) == 1 and coding != "signed"):
        raise DataError(
            f"{label}: only the genotype code(s) {sorted(present)} occur, which fits several "
            f"codings; pass coding='signed', 'paper', 'binary' or 'dosage'"
        )
    if not present <= allowed:
        row, col = _first_cell_outside(raw, allowed)
        raise DataError(
            f"{label}: mixed genotype codings: codes {sorted(present)} occur together; e.g. "
            f"{_locate(raw, row, col, None)} has code {raw.codes[row, col]} while the file "
            f"otherwise looks {coding} ({sorted(allowed)})"
        )
    return coding


def _row_blocks(n_rows: int, block: int = 256) -> Iterable[slice]:
    """Row slices that keep the temporaries of whole-matrix passes small."""
    return (slice(start, min(n_rows, start + block)) for start in range(0, n_rows, block))


def _present_codes(codes: np.ndarray) -> set[int]:
    histogram = np.zeros(256, np.int64)
    for rows in _row_blocks(codes.shape[0]):
        histogram += np.bincount(codes[rows].view(np.uint8).ravel(), minlength=256)
    values = np.flatnonzero(histogram).astype(np.uint8).view(np.int8)
    return {int(v) for v in values if v != _RAW_MISSING}


def read_genotypes(
    path: str | Path,
    *,
    coding: str = "auto",
    missing_codes: Iterable[int] = (),
    progress: bool = False,
) -> GenotypeTable:
    """Parse a tab-separated genotype file (``SAMID`` then variants) into int8 allele counts."""
    path = Path(path)
    if coding != "auto" and coding not in CODINGS:
        raise ValueError(f"coding must be 'auto' or one of {sorted(CODINGS)}, got {coding!r}")
    missing = frozenset(int(c) for c in missing_codes)
    if coding != "auto" and missing & set(CODINGS[coding]):
        raise ValueError(
            f"missing_codes {sorted(missing)} overlap the valid codes of the {coding} coding"
        )
    data, label = read_source(path, GENOTYPE_FILE)
    started = time.perf_counter()
    raw = _parse_genotype_bytes(data, label, missing, progress)
    del data
    present = _present_codes(raw.codes)
    if coding == "auto":
        coding = _infer_coding(raw, present, label)
    else:
        allowed = set(CODINGS[coding])
        if not present <= allowed:
            row, col = _first_cell_outside(raw, allowed)
            hint = ""
            if raw.codes[row, col] not in {-1, 0, 1, 2}:
                hint = f"; if it marks a missing call, pass missing_codes=({raw.codes[row, col]},)"
            raise DataError(
                f"{_locate(raw, row, col, label)}: genotype code {raw.codes[row, col]} is outside "
                f"the declared {coding} coding {sorted(allowed)}{hint}"
            )
    table = np.full(256, MISSING, np.int8)
    for code, count in CODINGS[coding].items():
        table[code & 0xFF] = count
    counts = np.empty_like(raw.codes)
    for rows in _row_blocks(counts.shape[0]):
        counts[rows] = table[raw.codes[rows].view(np.uint8)]
    logger.info(
        "%s: %d samples x %d variants (%s coding) parsed in %.1f s",
        label,
        counts.shape[0],
        counts.shape[1],
        coding,
        time.perf_counter() - started,
    )
    return GenotypeTable(
        np.asarray(raw.sample_ids, dtype=str),
        np.asarray(raw.variant_ids, dtype=str),
        counts,
        _PLOIDY[coding],
        coding,
        path,
    )

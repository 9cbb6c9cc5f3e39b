"""The genomic data layer: find, validate, parse, prepare and cache the yeast cross.

Raw files (``genotype_full.txt`` and ``phenotype.csv``, zipped as published or plain) become a
:class:`Cross` (genotype counts plus phenotype table, aligned by sample ID), and then a
:class:`PreparedTrait` (one binarized trait, no missing values) that the models consume.
:func:`load_trait` is the cached front door; every problem with the input is a :class:`DataError`
whose message names the file, the line or sample, and the problem.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import logging
import os
import re
import tempfile
import time
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dpmia_utils import paths

logger = logging.getLogger(__name__)

#: The in-memory code of a missing genotype call in allele counts.
MISSING: int = -1

#: Bump when the layout or meaning of cached files changes, so old caches are never reused.
CACHE_FORMAT_VERSION: int = 1

GENOTYPE_FILE = "genotype_full.txt"
PHENOTYPE_FILE = "phenotype.csv"
UPSTREAM_BASE_URL = "https://github.com/shilab/DP-MIA/raw/master/data/"

#: SHA-256 of the published archives (also in shared/data/yeast/SHA256SUMS).
ARCHIVE_SHA256: dict[str, str] = {
    "genotype_full.txt.zip": "b674c0316ba3bf3f4d7103b556c153c384615c0bd9d7c32b1974cb8ec1e6a5d5",
    "phenotype.csv.zip": "af22b99cbb34c5671fcab14a7dd4c8f89b23c50bf3093d6c480ac97833b32ee7",
}

#: Genotype codings: the codes each accepts and the allele count (of the RM/alt allele) of each.
CODINGS: dict[str, dict[int, int]] = {
    "signed": {-1: 0, 1: 1},  # the published file: -1 = BY allele, 1 = RM allele
    "paper": {1: 0, 2: 1},  # the paper's description: 1 = BY, 2 = RM
    "binary": {0: 0, 1: 1},
    "dosage": {0: 0, 1: 1, 2: 2},
}
_PLOIDY = {"signed": 1, "paper": 1, "binary": 1, "dosage": 2}
_MISSING_TOKENS = frozenset({"", "NA", "NaN", "nan"})
_PHENOTYPE_MISSING_TOKENS = frozenset({"", "NA", "NaN", "nan", "N/A"})
_INTEGER_TOKEN = re.compile(r"[+-]?\d+")
_RAW_MISSING = -128  # sentinel for a missing cell in the raw (not yet decoded) code matrix
_TRAIT_COLUMN = re.compile(r"^\d+_(.+)_\d+$")
_BOM = b"\xef\xbb\xbf"
_NON_BLANK = re.compile(rb"\S")
_CHECKSUM_MEMO_MIN_BYTES = 32 * 2**20  # hash smaller files directly; memoize larger ones
_FAST_PATH_ROWS_PER_CHUNK = 64


class DataError(ValueError):
    """Malformed or inconsistent input data; the message names the file, line and problem."""


# --------------------------------------------------------------------------------------------
# Locating the raw files
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawArchives:
    """Where the genotype and phenotype files (zipped, gzipped or plain) were found."""

    genotype: Path
    phenotype: Path


_CANDIDATE_NAMES = {
    "genotype": (f"{GENOTYPE_FILE}.zip", GENOTYPE_FILE, f"{GENOTYPE_FILE}.gz"),
    "phenotype": (f"{PHENOTYPE_FILE}.zip", PHENOTYPE_FILE, f"{PHENOTYPE_FILE}.gz"),
}


def sha256_file(path: str | Path) -> str:
    """The SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(2**22), b""):
            digest.update(block)
    return digest.hexdigest()


def _find_pair(folder: Path) -> tuple[Path | None, Path | None]:
    """The first existing candidate for each of the two files in a folder."""
    found: list[Path | None] = []
    for kind in ("genotype", "phenotype"):
        hit = next((folder / n for n in _CANDIDATE_NAMES[kind] if (folder / n).is_file()), None)
        found.append(hit)
    return found[0], found[1]


def _verify_canonical(path: Path) -> None:
    """Check a canonically named archive against the published checksum."""
    expected = ARCHIVE_SHA256.get(path.name)
    if expected is None:
        return
    actual = sha256_file(path)
    if actual != expected:
        raise DataError(
            f"{path}: checksum mismatch: SHA-256 is {actual} but the published {path.name} has "
            f"{expected}; the file is corrupt, truncated or not the upstream archive "
            f"(delete it, or put your own data in a folder passed as data_dir)"
        )


def _make_downloader(progress: bool) -> Any:
    """The pooch downloader used to fetch the upstream archives (replaced in tests)."""
    import pooch

    return pooch.HTTPDownloader(progressbar=progress)


def _download_archives(folder: Path, progress: bool) -> RawArchives:
    """Fetch both archives from upstream into ``folder`` with pooch, verifying SHA-256."""
    import pooch

    fetched: dict[str, Path] = {}
    for name, expected in ARCHIVE_SHA256.items():
        url = UPSTREAM_BASE_URL + name
        try:
            fetched[name] = Path(
                pooch.retrieve(
                    url,
                    known_hash=f"sha256:{expected}",
                    fname=name,
                    path=folder,
                    downloader=_make_downloader(progress),
                )
            )
        except ValueError as exc:  # pooch reports a hash mismatch as ValueError
            raise DataError(
                f"{folder / name}: downloaded file from {url} failed verification "
                f"(expected SHA-256 {expected}): {exc}; the download was probably truncated, "
                f"try again"
            ) from exc
        except OSError as exc:  # requests' exceptions are OSErrors too
            raise DataError(f"could not download {name} from {url} into {folder}: {exc}") from exc
    return RawArchives(fetched["genotype_full.txt.zip"], fetched["phenotype.csv.zip"])


def locate_raw_data(data_dir: str | Path | None = None, *, download: bool = True) -> RawArchives:
    """Find the raw genotype and phenotype files, downloading them from upstream as a last resort.

    Order: explicit ``data_dir``; ``$DPMIA_DATA_DIR``; the repo's ``data/raw``; the shared folder;
    archives already downloaded into ``paths.download_dir()``; a download with pooch. An explicit
    folder (argument or environment variable) must hold both files. Canonically named archives
    found in the repo, shared or download folders are checked against the published SHA-256;
    files in a folder the user names are the user's data and are not.
    """
    chosen: tuple[str, Path] | None = None
    if data_dir is not None:
        chosen = ("data_dir", Path(data_dir).expanduser())
    elif os.environ.get("DPMIA_DATA_DIR"):
        chosen = ("$DPMIA_DATA_DIR", Path(os.environ["DPMIA_DATA_DIR"]).expanduser())
    if chosen is not None:  # a folder the user named: use it or fail, never fall through
        label, folder = chosen
        if not folder.is_dir():
            raise DataError(f"{label} {folder} does not exist or is not a folder")
        genotype, phenotype = _find_pair(folder)
        if genotype is None or phenotype is None:
            missing = [
                " or ".join(_CANDIDATE_NAMES[kind])
                for kind, hit in (("genotype", genotype), ("phenotype", phenotype))
                if hit is None
            ]
            present = sorted(p.name for p in folder.iterdir())[:10]
            raise DataError(
                f"{label} {folder} lacks {'; and '.join(missing)} (it holds: "
                f"{', '.join(present) or 'nothing'})"
            )
        return RawArchives(genotype, phenotype)

    searched = []
    local = [paths.raw_data_dir(), paths.SHARED_DATA_DIR]
    if not download:  # with download=True pooch itself reuses (and re-verifies) earlier downloads
        local.append(paths.download_dir())
    for folder in local:
        searched.append(str(folder))
        if not folder.is_dir():
            continue
        genotype, phenotype = _find_pair(folder)
        if genotype is None or phenotype is None:
            continue
        _verify_canonical(genotype)
        _verify_canonical(phenotype)
        return RawArchives(genotype, phenotype)
    if not download:
        raise DataError(
            "the yeast data files were not found (searched $DPMIA_DATA_DIR, "
            + ", ".join(searched)
            + ") and download=False"
        )
    logger.info("downloading the yeast archives into %s", paths.download_dir())
    return _download_archives(paths.download_dir(), progress=True)


# --------------------------------------------------------------------------------------------
# Reading raw bytes (zip, gzip or plain)
# --------------------------------------------------------------------------------------------


def _read_source(path: Path, expected_name: str) -> tuple[bytes, str]:
    """The bytes of a data file and a label naming it (``archive.zip (member)`` for zips)."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    name = path.name
    if name.lower().endswith(".zip"):
        try:
            with zipfile.ZipFile(path) as archive:
                members = [
                    info
                    for info in archive.infolist()
                    if not info.is_dir()
                    and not info.filename.startswith("__MACOSX/")
                    and not Path(info.filename).name.startswith("._")
                ]
                wanted = {expected_name}
                stem = name[: -len(".zip")]
                if stem not in (GENOTYPE_FILE, PHENOTYPE_FILE):  # e.g. mydata.txt.zip
                    wanted.add(stem)
                chosen = [m for m in members if Path(m.filename).name in wanted]
                if not chosen:
                    held = ", ".join(m.filename for m in members) or "no data file"
                    raise DataError(
                        f"{path}: the zip archive holds {held}, expected {expected_name}"
                    )
                member = chosen[0]
                return archive.read(member), f"{path} (member {member.filename})"
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, zlib.error) as exc:
            raise DataError(
                f"{path}: not a readable zip archive (truncated or corrupt?): {exc}"
            ) from exc
    if name.lower().endswith(".gz"):
        try:
            return gzip.decompress(path.read_bytes()), str(path)
        except (gzip.BadGzipFile, EOFError, OSError, zlib.error) as exc:
            raise DataError(
                f"{path}: not a readable gzip file (truncated or corrupt?): {exc}"
            ) from exc
    return path.read_bytes(), str(path)


def _normalize_text_bytes(data: bytes, label: str) -> bytes:
    """Drop a UTF-8 BOM and turn CRLF/CR line endings into LF; refuse UTF-16."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError(f"{label}: the file is UTF-16 encoded; save it as UTF-8 text")
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return data


def _decode(raw: bytes, label: str, where: str) -> str:
    """Decode UTF-8 text, naming the place when it is not UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{label}: {where} is not valid UTF-8 text ({exc.reason})") from exc


# --------------------------------------------------------------------------------------------
# Genotypes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class GenotypeTable:
    """A parsed genotype file: int8 counts of the RM/alt allele per sample and variant."""

    sample_ids: np.ndarray
    variant_ids: np.ndarray
    counts: np.ndarray  # int8 (n_samples, n_variants); MISSING (-1) where not called
    ploidy: int
    coding: str
    source: Path

    @property
    def n_samples(self) -> int:
        """Number of samples (rows)."""
        return int(self.counts.shape[0])

    @property
    def n_variants(self) -> int:
        """Number of variants (columns)."""
        return int(self.counts.shape[1])

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
    _check_unique(variant_ids, label, "variant ID", "header column")
    return variant_ids


def _check_unique(
    ids: Sequence[str], label: str, what: str, unit: str, where: Sequence[int] | None = None
) -> None:
    """Raise naming the first few duplicated IDs and where (line or column) they occur."""
    if len(set(ids)) == len(ids):
        return
    where = where if where is not None else range(2, len(ids) + 2)
    positions: dict[str, list[int]] = {}
    for value, place in zip(ids, where, strict=True):
        positions.setdefault(value, []).append(int(place))
    duplicated = [(v, where) for v, where in positions.items() if len(where) > 1]
    shown = "; ".join(f"{v!r} ({unit}s {', '.join(map(str, w[:4]))})" for v, w in duplicated[:5])
    raise DataError(f"{label}: {len(duplicated)} duplicate {what}(s): {shown}")


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
        if len(cells) != n_variants + 1:
            raise DataError(
                f"{label}: line {line_number} has {len(cells)} tab-separated fields, expected "
                f"{n_variants + 1} (a sample ID and {n_variants} variants, as in the header)"
            )
        sample = cells[0].strip()
        if not sample:
            raise DataError(f"{label}: line {line_number} has an empty sample ID")
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
    data = _normalize_text_bytes(data, label)
    if not _NON_BLANK.search(data):
        raise DataError(f"{label}: the genotype file is empty")
    header_end = data.find(b"\n")
    header_end = len(data) if header_end < 0 else header_end
    variant_ids = _parse_genotype_header(_decode(data[:header_end], label, "line 1"), label)
    if not _NON_BLANK.search(data, header_end + 1):
        raise DataError(f"{label}: the genotype file has a header but no sample rows")
    body = np.frombuffer(data, np.uint8)[header_end + 1 :]
    try:
        id_bytes, codes = _parse_fast(body, len(variant_ids), "parsing genotypes", progress)
        sample_ids = [
            _decode(raw, label, f"the sample ID on line {i + 2}").strip()
            for i, raw in enumerate(id_bytes)
        ]
        if any(not s for s in sample_ids):
            raise _FastPathUnsuitable("blank sample ID")
        raw = _RawGenotypes(sample_ids, variant_ids, codes, None)
    except _FastPathUnsuitable as reason:
        logger.info("%s: using the careful parser (%s)", label, reason)
        text = _decode(data, label, "the file")
        raw = _parse_careful(text, len(variant_ids), variant_ids, label, missing_codes)
    if missing_codes:
        in_range = [c for c in missing_codes if -127 <= c <= 127]
        if in_range:
            raw.codes[np.isin(raw.codes, in_range)] = _RAW_MISSING
    _check_unique(raw.sample_ids, label, "sample ID", "line", raw.line_numbers)
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
    data, label = _read_source(path, GENOTYPE_FILE)
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


# --------------------------------------------------------------------------------------------
# Phenotypes
# --------------------------------------------------------------------------------------------


def _phenotype_rows(path: Path) -> tuple[csv.reader, str]:
    data, label = _read_source(path, PHENOTYPE_FILE)
    data = _normalize_text_bytes(data, label)
    text = _decode(data, label, "the file")
    if not text.strip():
        raise DataError(f"{label}: the phenotype file is empty")
    return csv.reader(io.StringIO(text, newline="")), label


def _phenotype_header(header: list[str], label: str) -> list[str]:
    if len(header) < 2:
        if header and "\t" in header[0]:
            raise DataError(
                f"{label}: the header on line 1 has tabs but no commas; the phenotype file must "
                f"be comma-separated"
            )
        raise DataError(f"{label}: the header on line 1 has no trait columns after the ID")
    traits = [cell.strip() for cell in header[1:]]
    empty = [i + 2 for i, t in enumerate(traits) if not t]
    if empty:
        raise DataError(f"{label}: line 1 (header): empty trait name in column(s) {empty[:5]}")
    _check_unique(traits, label, "trait column", "header column")
    return traits


def read_phenotype_traits(path: str | Path) -> list[str]:
    """The trait column names of a phenotype file (its header), without parsing the values."""
    rows, label = _phenotype_rows(Path(path))
    return _phenotype_header(next(rows), label)


def read_phenotypes(path: str | Path) -> pd.DataFrame:
    """Parse a phenotype CSV (sample ID column, then traits) into a float frame indexed by ID."""
    path = Path(path)
    rows, label = _phenotype_rows(path)
    try:
        traits = _phenotype_header(next(rows), label)
        sample_ids: list[str] = []
        line_numbers: list[int] = []
        values: list[list[float]] = []
        for cells in rows:
            line = rows.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(traits) + 1:
                raise DataError(
                    f"{label}: line {line} has {len(cells)} comma-separated fields, expected "
                    f"{len(traits) + 1} (a sample ID and {len(traits)} traits, as in the header)"
                )
            sample = cells[0].strip()
            if not sample:
                raise DataError(f"{label}: line {line} has an empty sample ID")
            row = []
            for column, token in enumerate(cells[1:]):
                stripped = token.strip()
                if stripped in _PHENOTYPE_MISSING_TOKENS:
                    row.append(np.nan)
                    continue
                try:
                    number = float(stripped)
                except ValueError:
                    number = np.nan
                    problem = "non-numeric"
                else:
                    problem = "" if np.isfinite(number) else "non-finite"
                if problem:
                    raise DataError(
                        f"{label}: line {line}, column {column + 2} (trait {traits[column]}), "
                        f"sample {sample}: {problem} phenotype value {token!r}"
                    )
                row.append(number)
            sample_ids.append(sample)
            line_numbers.append(line)
            values.append(row)
    except csv.Error as exc:
        raise DataError(f"{label}: line {rows.line_num}: malformed CSV: {exc}") from exc
    if not sample_ids:
        raise DataError(f"{label}: the phenotype file has a header but no sample rows")
    _check_unique(sample_ids, label, "sample ID", "line", line_numbers)
    frame = pd.DataFrame(
        np.asarray(values, dtype=np.float64),
        index=pd.Index(sample_ids, dtype=object, name="sample_id"),
        columns=traits,
    )
    frame.attrs["source"] = str(path)
    return frame


# --------------------------------------------------------------------------------------------
# The cross: genotypes and phenotypes aligned by sample
# --------------------------------------------------------------------------------------------


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


def raw_file_checksum(path: str | Path, *, memo_dir: str | Path | None = None) -> str:
    """SHA-256 of a raw file; large files' digests are memoized by (path, size, mtime)."""
    path = Path(path).resolve()
    stat = path.stat()
    if stat.st_size < _CHECKSUM_MEMO_MIN_BYTES:
        return sha256_file(path)
    memo_path = Path(memo_dir or paths.cache_dir()) / "raw-file-checksums.json"
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    if isinstance(memo, dict) and isinstance(memo.get(key), str):
        return memo[key]
    digest = sha256_file(path)
    memo = memo if isinstance(memo, dict) else {}
    memo[key] = digest
    try:
        _atomic_write_bytes(memo_path, json.dumps(memo, indent=1).encode())
    except OSError as exc:  # a read-only cache folder only costs speed
        logger.warning("could not record the checksum of %s: %s", path, exc)
    return digest


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


def _raw_checksums(archives: RawArchives, memo_dir: str | Path | None) -> dict[str, str]:
    return {
        "genotype": raw_file_checksum(archives.genotype, memo_dir=memo_dir),
        "phenotype": raw_file_checksum(archives.phenotype, memo_dir=memo_dir),
    }


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
    return _load_cross_from(
        archives,
        _raw_checksums(archives, cache_dir),
        coding=coding,
        missing=tuple(sorted({int(c) for c in missing_codes})),
        allow_partial_overlap=allow_partial_overlap,
        progress=progress,
        cache=cache,
        cache_dir=cache_dir,
    )


def _load_cross_from(
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
    if cache:
        genotypes = _cached_genotypes(
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


# --------------------------------------------------------------------------------------------
# Traits
# --------------------------------------------------------------------------------------------


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
class PreparedTrait:
    """One binarized trait with complete genotypes: what the target and shadow models train on."""

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

    @property
    def n_samples(self) -> int:
        """Number of individuals."""
        return int(self.genotypes.shape[0])

    @property
    def n_variants(self) -> int:
        """Number of variants (model input width)."""
        return int(self.genotypes.shape[1])

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
        rng = np.random.default_rng(seed)
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


# --------------------------------------------------------------------------------------------
# The cache
# --------------------------------------------------------------------------------------------


def _atomic_write_bytes(target: Path, payload: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        dir=target.parent, prefix=f".{target.name}.", delete=False
    ) as tmp:
        try:
            tmp.write(payload)
            tmp.flush()
            os.fsync(tmp.fileno())
        except BaseException:
            tmp.close()
            os.unlink(tmp.name)
            raise
    os.replace(tmp.name, target)


def _atomic_savez(target: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write an uncompressed .npz via a temp file in the same folder, fsync, then rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        dir=target.parent, prefix=f".{target.name}.", suffix=".tmp", delete=False
    ) as tmp:
        try:
            np.savez(tmp, **arrays)
            tmp.flush()
            os.fsync(tmp.fileno())
        except BaseException:
            tmp.close()
            os.unlink(tmp.name)
            raise
    os.replace(tmp.name, target)


def _cache_key(payload: dict[str, Any]) -> str:
    text = json.dumps({"format": CACHE_FORMAT_VERSION, **payload}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _meta_array(meta: dict[str, Any]) -> np.ndarray:
    return np.array(json.dumps(meta, sort_keys=True))


def _load_npz(
    path: Path, key: str, names: Sequence[str]
) -> tuple[dict[str, np.ndarray], dict] | None:
    """The arrays and metadata of a cache file, or None if it is absent, stale or corrupt."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in names}
            meta = json.loads(str(archive["meta"]))
        if meta.get("key") != key or meta.get("format") != CACHE_FORMAT_VERSION:
            raise ValueError("cache key mismatch")
        return arrays, meta
    except Exception as exc:  # any failure to read means: rebuild, never use it
        logger.warning("cache file %s is unreadable or stale (%s); rebuilding it", path, exc)
        try:
            path.unlink()
        except OSError:
            pass
        return None


def _cached_genotypes(
    path: Path,
    checksum: str,
    coding: str,
    missing_codes: tuple[int, ...],
    cache_dir: str | Path | None,
    progress: bool,
) -> GenotypeTable:
    """Parsed genotypes from the cache (keyed by file checksum and parse options), or parse now."""
    folder = Path(cache_dir) if cache_dir is not None else paths.cache_dir()
    key = _cache_key(
        {"kind": "genotypes", "sha256": checksum, "coding": coding, "missing": list(missing_codes)}
    )
    target = folder / f"genotypes-{key[:20]}.npz"
    hit = _load_npz(target, key, ("sample_ids", "variant_ids", "counts"))
    if hit is not None:
        arrays, meta = hit
        n, p = arrays["counts"].shape
        if (
            arrays["counts"].dtype == np.int8
            and arrays["sample_ids"].shape == (n,)
            and arrays["variant_ids"].shape == (p,)
        ):
            return GenotypeTable(
                arrays["sample_ids"],
                arrays["variant_ids"],
                arrays["counts"],
                int(meta["ploidy"]),
                str(meta["coding"]),
                path,
            )
        logger.warning("cache file %s has inconsistent shapes; rebuilding it", target)
    table = read_genotypes(path, coding=coding, missing_codes=missing_codes, progress=progress)
    meta = {
        "key": key,
        "format": CACHE_FORMAT_VERSION,
        "ploidy": table.ploidy,
        "coding": table.coding,
    }
    try:
        _atomic_savez(
            target,
            {
                "sample_ids": table.sample_ids,
                "variant_ids": table.variant_ids,
                "counts": table.counts,
                "meta": _meta_array(meta),
            },
        )
    except OSError as exc:
        logger.warning("could not write the cache file %s: %s", target, exc)
    return table


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
    folder = Path(cache_dir) if cache_dir is not None else paths.cache_dir()
    checksums = _raw_checksums(archives, folder)
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
    key = _cache_key({"kind": "trait", "checksums": checksums, "options": options})
    target = folder / f"trait-{short_trait_name(column)}-{key[:20]}.npz"
    if cache:
        started = time.perf_counter()
        hit = _load_npz(target, key, _TRAIT_ARRAYS)
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
    cross = _load_cross_from(
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
        meta = {
            "key": key,
            "format": CACHE_FORMAT_VERSION,
            "threshold": prepared.threshold,
            "trait": prepared.trait,
            "ploidy": prepared.ploidy,
            "provenance": prepared.provenance,
        }
        arrays = {name: getattr(prepared, name) for name in _TRAIT_ARRAYS}
        try:
            _atomic_savez(target, {**arrays, "meta": _meta_array(meta)})
        except OSError as exc:
            logger.warning("could not write the cache file %s: %s", target, exc)
    return prepared

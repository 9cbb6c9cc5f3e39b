"""The cache: parsed genotypes and prepared traits as uncompressed .npz files, keyed by content.

A cache file's name and its stored key are a SHA-256 over the raw files' checksums and every
option that changes the result, so a changed file or option never reuses an old entry; a file
that is unreadable, stale or inconsistent is rebuilt, never used. Large raw files' checksums are
memoized by (path, size, mtime). Files are written atomically (:mod:`dpmia_utils.jsonio`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dpmia_utils import paths
from dpmia_utils.jsonio import atomic_savez, atomic_write_bytes

from .genotypes import GenotypeTable, read_genotypes
from .locate import RawArchives, sha256_file

logger = logging.getLogger(__name__)

#: Bump when the layout or meaning of cached files changes, so old caches are never reused.
CACHE_FORMAT_VERSION: int = 1

_CHECKSUM_MEMO_MIN_BYTES = 32 * 2**20  # hash smaller files directly; memoize larger ones


def cache_folder(cache_dir: str | Path | None) -> Path:
    """The cache folder: ``cache_dir`` when given, else ``paths.cache_dir()``."""
    return Path(cache_dir) if cache_dir is not None else paths.cache_dir()


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
        atomic_write_bytes(memo_path, json.dumps(memo, indent=1).encode())
    except OSError as exc:  # a read-only cache folder only costs speed
        logger.warning("could not record the checksum of %s: %s", path, exc)
    return digest


def raw_checksums(archives: RawArchives, memo_dir: str | Path | None) -> dict[str, str]:
    """The SHA-256 of the genotype and the phenotype file."""
    return {
        "genotype": raw_file_checksum(archives.genotype, memo_dir=memo_dir),
        "phenotype": raw_file_checksum(archives.phenotype, memo_dir=memo_dir),
    }


def cache_key(payload: dict[str, Any]) -> str:
    """The SHA-256 naming a cache entry: the format version and everything the entry depends on."""
    text = json.dumps({"format": CACHE_FORMAT_VERSION, **payload}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def load_npz(
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


def save_npz(path: Path, key: str, arrays: dict[str, np.ndarray], **meta: Any) -> None:
    """Write a cache file: the arrays plus a JSON ``meta`` entry holding the key and the format.

    A folder that cannot be written only costs speed: the failure is logged, not raised.
    """
    meta = {"key": key, "format": CACHE_FORMAT_VERSION, **meta}
    try:
        atomic_savez(path, {**arrays, "meta": np.array(json.dumps(meta, sort_keys=True))})
    except OSError as exc:
        logger.warning("could not write the cache file %s: %s", path, exc)


def cached_genotypes(
    path: Path,
    checksum: str,
    coding: str,
    missing_codes: tuple[int, ...],
    cache_dir: str | Path | None,
    progress: bool,
) -> GenotypeTable:
    """Parsed genotypes from the cache (keyed by file checksum and parse options), or parse now."""
    key = cache_key(
        {"kind": "genotypes", "sha256": checksum, "coding": coding, "missing": list(missing_codes)}
    )
    target = cache_folder(cache_dir) / f"genotypes-{key[:20]}.npz"
    hit = load_npz(target, key, ("sample_ids", "variant_ids", "counts"))
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
    arrays = {
        "sample_ids": table.sample_ids,
        "variant_ids": table.variant_ids,
        "counts": table.counts,
    }
    save_npz(target, key, arrays, ploidy=table.ploidy, coding=table.coding)
    return table

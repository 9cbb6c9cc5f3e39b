"""Where the raw yeast files are: a folder the user names, the repository, the shared folder, or
a download from upstream verified against the published SHA-256.

:func:`locate_raw_data` returns a :class:`RawArchives` (the genotype and the phenotype file,
zipped as published, gzipped or plain); nothing here reads their contents.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dpmia_utils import paths

from .sources import GENOTYPE_FILE, PHENOTYPE_FILE, DataError

logger = logging.getLogger(__name__)

UPSTREAM_BASE_URL = "https://github.com/shilab/DP-MIA/raw/master/data/"

#: SHA-256 of the published archives (also in shared/data/yeast/SHA256SUMS).
ARCHIVE_SHA256: dict[str, str] = {
    "genotype_full.txt.zip": "b674c0316ba3bf3f4d7103b556c153c384615c0bd9d7c32b1974cb8ec1e6a5d5",
    "phenotype.csv.zip": "af22b99cbb34c5671fcab14a7dd4c8f89b23c50bf3093d6c480ac97833b32ee7",
}


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

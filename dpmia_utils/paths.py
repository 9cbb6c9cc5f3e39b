"""One place for every path the study reads or writes, so notebooks run from any folder."""

from __future__ import annotations

import os
from pathlib import Path

#: The repository root (the folder holding ``_config.yml``), found from this file, not the cwd.
REPO_ROOT: Path = Path(__file__).resolve().parent.parent

#: Where the shared, read-only yeast archives live next to the repository.
SHARED_DATA_DIR: Path = REPO_ROOT.parent / "shared" / "data" / "yeast"


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser().resolve() if value else default


def raw_data_dir() -> Path:
    """The repo-local folder for raw archives (``data/raw``), git-ignored."""
    return REPO_ROOT / "data" / "raw"


def cache_dir() -> Path:
    """Where prepared, binary datasets are cached (``$DPMIA_CACHE_DIR`` or ``data/cache``)."""
    return _env_path("DPMIA_CACHE_DIR", REPO_ROOT / "data" / "cache")


def download_dir() -> Path:
    """Where archives downloaded from upstream are kept (``$DPMIA_DOWNLOAD_DIR`` or ``data/download``)."""
    return _env_path("DPMIA_DOWNLOAD_DIR", REPO_ROOT / "data" / "download")


def results_dir() -> Path:
    """Root of the results store (``$DPMIA_RESULTS_DIR`` or ``results``), git-ignored."""
    return _env_path("DPMIA_RESULTS_DIR", REPO_ROOT / "results")


def notebooks_dir() -> Path:
    """The committed, output-free stage notebooks."""
    return REPO_ROOT / "notebooks"


def parameters_dir() -> Path:
    """The grid profiles (``smoke.yml``, ``quick.yml``, ...)."""
    return REPO_ROOT / "parameters"


def published_dir() -> Path:
    """Results of long profiles published with the repository (records and summaries only)."""
    return REPO_ROOT / "published"

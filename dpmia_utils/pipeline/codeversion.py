"""The code version: what a run's code is, as a rule of folders.

A run executes the science packages and ``stages/`` (through the run-stage notebooks), so
its code version hashes every ``.py`` file under ``dpmia_utils/`` except the machinery
(``pipeline/``, ``publish/``, ``devtools/``, ``cli.py``, ``__main__.py``) and the package's
top-level ``__init__.py`` (its module map), and the code cells
of the run-stage notebooks. Editing the machinery never reruns anything; a change to how
records are assembled bumps the store's RECORD_SCHEMA_VERSION instead. No import graph is
walked: which files count is visible in the folder tree.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from .. import paths

#: Stage notebooks executed for every run, in order; each writes one JSON output.
RUN_STAGES: tuple[tuple[str, str], ...] = (
    ("02_target_training", "target.json"),
    ("03_membership_inference", "attack.json"),
)
RUN_STAGE_NOTEBOOKS: tuple[str, ...] = tuple(stage for stage, _ in RUN_STAGES)
#: Stage notebooks executed once per profile: data preparation first, curve fitting last.
PROFILE_STAGES: tuple[str, ...] = ("01_data_prep", "04_curve_fitting")
#: The package's machinery (relative to the package): no run depends on it.
MACHINERY: tuple[str, ...] = ("pipeline", "publish", "devtools", "cli.py", "__main__.py")
#: The package's own __init__.py: its docstring maps the modules and it quiets TensorFlow's
#: start-up logs, so adding a module to the map must not rerun the grid.
PACKAGE_INDEX: tuple[str, ...] = ("__init__.py",)
#: What the once-per-profile notebooks draw their figures and tables with.
RENDERING: tuple[str, ...] = ("publish",)
#: Packages whose versions every record and executed notebook carries.
RECORDED_PACKAGES: tuple[str, ...] = (
    "tensorflow",
    "tensorflow-privacy",
    "dp-accounting",
    "numpy",
    "scipy",
    "pandas",
    "scikit-learn",
    "statsmodels",
    "papermill",
    "distributed",
    "dpmia-utils",
)


def _package_dir() -> Path:
    return Path(__file__).resolve().parent.parent


def notebook_code(path: Path) -> str:
    """The code cells of a notebook: what changes its behaviour (outputs and metadata do not)."""
    nb = json.loads(path.read_text())
    return "\n".join(
        "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        for cell in nb["cells"]
        if cell["cell_type"] == "code"
    )


def _package_files(select: Callable[[str], bool]) -> list[Path]:
    """The package's .py files whose top folder (or own name) `select` accepts, relative to the
    package and sorted by path."""
    package = _package_dir()
    found = (p.relative_to(package) for p in package.rglob("*.py"))
    return sorted((p for p in found if select(p.parts[0])), key=Path.as_posix)


def code_files() -> list[Path]:
    """The package's files a run depends on: all but the machinery and the package index."""
    return _package_files(lambda top: top not in MACHINERY and top not in PACKAGE_INDEX)


def rendering_files() -> list[Path]:
    """The package's files the once-per-profile notebooks draw with (publish/)."""
    return _package_files(lambda top: top in RENDERING)


def _digest(files: list[Path], notebooks: tuple[str, ...] = ()) -> str:
    """Hash of the files (path and bytes, in order) and the notebooks' code cells."""
    digest = hashlib.sha256()
    package = _package_dir()
    for relative in files:
        digest.update(relative.as_posix().encode())
        digest.update((package / relative).read_bytes())
    for stage in notebooks:
        digest.update(stage.encode())
        digest.update(notebook_code(paths.notebooks_dir() / f"{stage}.ipynb").encode())
    return digest.hexdigest()[:16]


def code_version(notebooks: tuple[str, ...] = RUN_STAGE_NOTEBOOKS) -> str:
    """Hash of the package outside its machinery and of the given notebooks' code cells."""
    return _digest(code_files(), notebooks)


def rendering_version() -> str:
    """Hash of publish/: a once-per-profile notebook is drawn again when it changes (no run is)."""
    return _digest(rendering_files())


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that shape a run's numbers (None if absent)."""
    versions: dict[str, str | None] = {}
    for name in RECORDED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions

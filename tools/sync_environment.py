"""Write environment.yml (conda/Binder) from the pins in pyproject.toml: one source of truth."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADER = """\
# GENERATED from pyproject.toml by tools/sync_environment.py (`make environment.yml`).
# Do not edit by hand: tests/test_environment.py fails when the two disagree.
# Binder builds this environment; the pip section installs the same pins as `make setup`.
"""


def pinned_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """Return the runtime and test pins declared in pyproject.toml."""
    project = tomllib.loads(pyproject.read_text())["project"]
    return list(project["dependencies"]) + list(project["optional-dependencies"]["test"])


def render_environment(requirements: list[str]) -> str:
    """Render the conda environment file for the given pip requirements."""
    lines = [HEADER, "name: dpmia", "channels:", "  - conda-forge", "dependencies:"]
    lines += ["  - python=3.11", "  - pip", "  - pip:"]
    lines += [f"      - {req}" for req in requirements]
    lines += ["      - --editable ."]
    return "\n".join(lines) + "\n"


def main() -> int:
    """Regenerate environment.yml next to pyproject.toml."""
    (ROOT / "environment.yml").write_text(render_environment(pinned_requirements()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

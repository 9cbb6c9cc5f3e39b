"""Write environment.yml (conda/Binder) from pyproject.toml and constraints.txt: one source of truth.

The pip section lists the direct pins of pyproject.toml, then every other pin of
constraints.txt (the transitive versions `make setup` installs), so Binder resolves exactly the
versions of a local set-up. The pins are written out rather than referenced (``-c
constraints.txt``): micromamba, which Binder's repo2docker uses, runs pip on a copy of the pip
section in a temporary folder, where a relative ``-c`` or ``-r`` path does not resolve.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADER = """\
# GENERATED from pyproject.toml and constraints.txt by tools/sync_environment.py
# (`make environment.yml`). Do not edit by hand: tests/pipeline/test_environment.py fails when
# they disagree. Binder builds this environment; the pip section pins every package `make
# setup` installs (the direct pins, then the transitive ones of constraints.txt).
"""


def pinned_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """Return the runtime and test pins declared in pyproject.toml."""
    project = tomllib.loads(pyproject.read_text())["project"]
    return list(project["dependencies"]) + list(project["optional-dependencies"]["test"])


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", requirement.split("==", 1)[0].strip()).lower()


def transitive_pins(direct: list[str], constraints: Path = ROOT / "constraints.txt") -> list[str]:
    """The pins of constraints.txt for packages that are not direct requirements."""
    names = {_name(req) for req in direct}
    lines = [line.strip() for line in constraints.read_text().splitlines()]
    return [line for line in lines if "==" in line and _name(line) not in names]


def render_environment(requirements: list[str]) -> str:
    """Render the conda environment file for the given pip requirements."""
    lines = [HEADER, "name: dpmia", "channels:", "  - conda-forge", "dependencies:"]
    lines += ["  - python=3.11", "  - pip", "  - pip:"]
    lines += [f"      - {req}" for req in requirements]
    lines += [f"      - {req}" for req in transitive_pins(requirements)]
    lines += ["      - --editable ."]
    return "\n".join(lines) + "\n"


def main() -> int:
    """Regenerate environment.yml next to pyproject.toml."""
    (ROOT / "environment.yml").write_text(render_environment(pinned_requirements()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

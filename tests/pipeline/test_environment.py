"""One source of truth for pins: pyproject.toml, environment.yml and constraints.txt agree."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)$")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(requirements):
    pins = {}
    for req in requirements:
        match = PIN.match(req.strip())
        assert match, f"not an exact pin: {req!r}"
        pins[_canonical(match.group(1))] = match.group(2)
    return pins


def _pyproject_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return _pins(project["dependencies"] + project["optional-dependencies"]["test"])


def _constraints_pins():
    return _pins(
        line for line in (ROOT / "constraints.txt").read_text().splitlines() if "==" in line
    )


def test_environment_yml_pins_what_make_setup_installs():
    """Binder: the direct pins and every transitive pin of constraints.txt, nothing else."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    requirements = [r for r in pip_section if not r.startswith("--editable")]
    assert len(requirements) == len(_pins(requirements))  # no package twice
    assert _pins(requirements) == {**_constraints_pins(), **_pyproject_pins()}
    # No relative -c/-r: micromamba (Binder) runs pip on a copy in a temporary folder.
    assert not [r for r in pip_section if r.startswith(("-c", "-r"))]


def test_constraints_lock_agrees_with_every_direct_pin():
    lock = _constraints_pins()
    for name, version in _pyproject_pins().items():
        assert lock.get(name) == version, (
            f"{name}: pyproject {version}, constraints {lock.get(name)}"
        )

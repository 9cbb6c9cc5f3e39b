"""Cache invalidation: a change reruns exactly the runs it affects, and nothing else.

A run is named by its parameters, the shared blocks, the raw data's checksum and the code
it executes, so "will it rerun?" is "does the planner still find it complete?". These
tests plan against a store of complete-looking runs and change one thing at a time.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
import pytest

from dpmia_utils import paths
from dpmia_utils.data import simulate_cross, write_cross
from dpmia_utils.jsonio import atomic_write_json
from dpmia_utils.pipeline import codeversion
from dpmia_utils.pipeline.codeversion import (
    MACHINERY,
    PROFILE_STAGES,
    RUN_STAGES,
    code_files,
    code_version,
)
from dpmia_utils.pipeline.execute import profile_stage_key
from dpmia_utils.pipeline.plan import check_profile_data, plan_runs
from dpmia_utils.pipeline.profiles import load_profile
from dpmia_utils.pipeline.store import RECORD_SCHEMA_VERSION, ProfileStore
from dpmia_utils.stages import data_fingerprint

GROUPS = """
groups:
  - name: baseline
    model: lasso
    l1: [0.0, 0.001]
  - name: dp
    model: lasso
    dp: true
    noise_multiplier: 1.0
"""


def write_profile(path: Path, data_dir: Path, extra: str = "", groups: str = GROUPS) -> Path:
    path.write_text(
        f"profile: {path.stem}\ndata: {{source: yeast, data_dir: '{data_dir}'}}\n"
        f"split: {{folds: 2}}\n{extra}{groups}"
    )
    return path


@pytest.fixture
def cross(tmp_path) -> Path:
    """A small synthetic cross written as plain genotype and phenotype files."""
    folder = tmp_path / "cross"
    write_cross(simulate_cross(n_samples=60, n_variants=40, seed=3), folder, zipped=False)
    return folder


def _executed_notebook(path: Path) -> None:
    """A notebook whose papermill metadata says every cell ran cleanly."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")])
    nb.cells[0].metadata["papermill"] = {"status": "completed"}
    nb.metadata["papermill"] = {"exception": None, "end_time": "2026-01-01T00:00:00"}
    nbformat.write(nb, path)


def fill_store(profile_path: Path, results: Path) -> ProfileStore:
    """Mark every run of the profile complete in `results`, as the runner would leave it."""
    profile = load_profile(profile_path)
    store = ProfileStore.for_profile(profile.name, results)
    for planned in plan_runs(
        profile, store, check_profile_data(profile, load=False), code_version()
    ):
        folder = store.run_dir(planned.run_id)
        folder.mkdir(parents=True)
        for stage, _ in RUN_STAGES:
            _executed_notebook(folder / f"{stage}.ipynb")
        record = {
            "schema_version": RECORD_SCHEMA_VERSION,
            "run_id": planned.run_id,
            "profile": profile.name,
            "group": planned.spec.group,
            "params": planned.spec.params,
            "target": {"test_accuracy_mean": 0.7, "train_accuracy_mean": 0.8, "epsilon": {}},
            "attack": {"attacks": {}},
            "notebooks": [f"{stage}.ipynb" for stage, _ in RUN_STAGES],
            "provenance": {},
        }
        atomic_write_json(folder / "record.json", record)
    return store


def statuses(profile_path: Path, results: Path) -> dict[str, str]:
    """The planner's status of every run, by label."""
    profile = load_profile(profile_path)
    store = ProfileStore.for_profile(profile.name, results)
    planned = plan_runs(profile, store, check_profile_data(profile, load=False), code_version())
    return {p.spec.label: p.status for p in planned}


def all_complete(found: dict[str, str]) -> bool:
    return set(found.values()) == {"complete"}


def all_pending(found: dict[str, str]) -> bool:
    return set(found.values()) == {"pending"}


def change_one_byte(path: Path) -> bytes:
    """Replace the last digit of the first data row with another; return the old bytes."""
    original = path.read_bytes()
    lines = original.split(b"\n")
    row = bytearray(lines[1])
    position = next(i for i in range(len(row) - 1, 0, -1) if chr(row[i]).isdigit())
    row[position] = ord("7") if row[position] != ord("7") else ord("3")
    lines[1] = bytes(row)
    changed = b"\n".join(lines)
    assert (
        len(changed) == len(original)
        and sum(a != b for a, b in zip(changed, original, strict=True)) == 1
    )
    path.write_bytes(changed)
    return original


# --- data --------------------------------------------------------------------------------------


def test_the_data_fingerprint_follows_the_raw_bytes_not_paths_or_times(cross, tmp_path):
    data = {"source": "yeast", "data_dir": str(cross)}
    before = data_fingerprint(data)
    copy = tmp_path / "elsewhere"
    shutil.copytree(cross, copy)
    assert data_fingerprint({**data, "data_dir": str(copy)}) == before  # content, not path
    for name in ("genotype_full.txt", "phenotype.csv"):
        os.utime(cross / name, (1e9, 1e9))
    (cross / "README.md").write_text("notes")
    assert data_fingerprint(data) == before  # times and unrelated files do not count
    for name in ("genotype_full.txt", "phenotype.csv"):
        original = change_one_byte(cross / name)
        assert data_fingerprint(data) != before, name
        (cross / name).write_bytes(original)
        assert data_fingerprint(data) == before


def test_one_changed_byte_reruns_the_runs_on_that_data_only(cross, tmp_path):
    results = tmp_path / "results"
    other_data = tmp_path / "other-cross"
    shutil.copytree(cross, other_data)
    mine = fill_store(write_profile(tmp_path / "mine.yml", cross), results)
    theirs_path = write_profile(tmp_path / "theirs.yml", other_data)
    fill_store(theirs_path, results)
    assert all_complete(statuses(tmp_path / "mine.yml", results))

    original = change_one_byte(cross / "phenotype.csv")
    assert all_pending(statuses(tmp_path / "mine.yml", results))
    assert all_complete(statuses(theirs_path, results))
    (cross / "phenotype.csv").write_bytes(original)  # the same bytes name the same runs
    assert all_complete(statuses(tmp_path / "mine.yml", results))
    assert len(list(mine.complete_run_ids())) == 3


def test_moving_the_data_to_another_folder_reruns_nothing(cross, tmp_path):
    results = tmp_path / "results"
    profile = write_profile(tmp_path / "mine.yml", cross)
    fill_store(profile, results)
    moved = tmp_path / "moved-cross"
    shutil.copytree(cross, moved)
    write_profile(profile, moved)  # the same bytes elsewhere: the same runs
    assert all_complete(statuses(profile, results))


def test_touching_times_or_unrelated_files_reruns_nothing(cross, tmp_path):
    results = tmp_path / "results"
    profile = write_profile(tmp_path / "mine.yml", cross)
    fill_store(profile, results)
    for name in ("genotype_full.txt", "phenotype.csv"):
        os.utime(cross / name)
    (cross / "README.md").write_text("the cross we simulated")
    profile.write_text(profile.read_text().replace("split:", "description: renamed\nsplit:"))
    assert all_complete(statuses(profile, results))


# --- parameters --------------------------------------------------------------------------------


def test_changing_one_runs_parameter_reruns_only_that_run(cross, tmp_path):
    results = tmp_path / "results"
    profile = write_profile(tmp_path / "mine.yml", cross)
    fill_store(profile, results)
    write_profile(
        profile, cross, groups=GROUPS.replace("noise_multiplier: 1.0", "noise_multiplier: 1.1")
    )
    found = statuses(profile, results)
    assert found == {
        "lasso l1=0 e50 b16": "complete",
        "lasso l1=0.001 e50 b16": "complete",
        "lasso l1=0 dp noise=1.1 e50 b16": "pending",
    }


def test_changing_a_shared_block_reruns_every_run(cross, tmp_path):
    results = tmp_path / "results"
    profile = write_profile(tmp_path / "mine.yml", cross)
    fill_store(profile, results)
    write_profile(profile, cross, extra="attack: {repeats: 3}\n")
    assert all_pending(statuses(profile, results))


# --- code --------------------------------------------------------------------------------------


@pytest.fixture
def notebooks(tmp_path, monkeypatch) -> Path:
    """A copy of the stage notebooks that the runner reads instead of the committed ones."""
    folder = tmp_path / "notebooks"
    shutil.copytree(paths.notebooks_dir(), folder)
    monkeypatch.setattr(paths, "notebooks_dir", lambda: folder)
    return folder


def edit_notebook(path: Path, cell_type: str, edit) -> None:
    nb = nbformat.read(path, as_version=4)
    cell = next(
        c
        for c in nb.cells
        if c.cell_type == cell_type and "parameters" not in c.metadata.get("tags", [])
    )
    edit(cell)
    nbformat.write(nb, path)


def profile_stage_keys(profile, store: ProfileStore) -> dict[str, str]:
    """The key of each once-per-profile notebook (same inputs): it reruns when its key changes."""
    return {s: profile_stage_key(s, profile, store, "x") for s in PROFILE_STAGES}


def test_stage_notebook_code_reruns_exactly_what_it_feeds(cross, tmp_path, notebooks):
    results = tmp_path / "results"
    profile_path = write_profile(tmp_path / "mine.yml", cross)
    store = fill_store(profile_path, results)
    profile = load_profile(profile_path)

    keys = profile_stage_keys(profile, store)
    training = notebooks / "02_target_training.ipynb"
    pristine = training.read_bytes()
    # Prose, outputs and execution counts are not code.
    edit_notebook(training, "markdown", lambda c: setattr(c, "source", c.source + "\nMore prose."))
    edit_notebook(training, "code", lambda c: c.update(execution_count=7, outputs=[]))
    assert (
        all_complete(statuses(profile_path, results)) and profile_stage_keys(profile, store) == keys
    )

    for stage in ("02_target_training", "03_membership_inference"):
        path = notebooks / f"{stage}.ipynb"
        before = path.read_bytes()
        edit_notebook(path, "code", lambda c: setattr(c, "source", c.source + "\nresult = None"))
        assert all_pending(statuses(profile_path, results)), stage
        assert (
            profile_stage_keys(profile, store) == keys
        )  # the profile stages do not run the run stages' code
        path.write_bytes(before)
    training.write_bytes(pristine)
    assert all_complete(statuses(profile_path, results))

    for stage in ("01_data_prep", "04_curve_fitting"):
        edit_notebook(
            notebooks / f"{stage}.ipynb",
            "code",
            lambda c: setattr(c, "source", c.source + "\n# edited"),
        )
        assert all_complete(statuses(profile_path, results)), stage
        changed = {s for s, key in profile_stage_keys(profile, store).items() if key != keys[s]}
        assert changed == {stage}
        keys = profile_stage_keys(profile, store)


@pytest.fixture
def package(tmp_path, monkeypatch) -> Path:
    """A copy of the package sources that the code version is computed from."""
    folder = tmp_path / "dpmia_utils"
    shutil.copytree(
        Path(codeversion.__file__).parent.parent,
        folder,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    monkeypatch.setattr(codeversion, "_package_dir", lambda: folder)
    return folder


def append_line(path: Path, line: str) -> bytes:
    """Append a comment line to a source file; return its old bytes."""
    before = path.read_bytes()
    path.write_bytes(before + f"\n# {line}\n".encode())
    return before


def test_the_code_version_is_a_rule_of_folders(package, notebooks):
    files = [p.as_posix() for p in code_files()]
    assert files == sorted(files) and "stages/params.py" in files and "models.py" in files
    assert not [f for f in files if f.split("/")[0] in MACHINERY]
    version = code_version()
    # Machinery: editing it (or adding to it) never changes a run.
    machinery = [p for p in package.rglob("*.py") if p.relative_to(package).parts[0] in MACHINERY]
    assert {"pipeline", "publish", "devtools", "cli.py", "__main__.py"} <= {
        p.relative_to(package).parts[0] for p in machinery
    }
    for path in [*machinery, package / "__init__.py"]:  # and the package's module map
        append_line(path, "an edit that cannot change a run")
    (package / "publish" / "new_figure.py").write_text("X = 1\n")
    assert code_version() == version
    # Science and stages: one file of every top-level module and package counts, imported by
    # a notebook or not.
    tops = {}
    for relative in code_files():
        tops.setdefault(relative.parts[0], relative)
    assert {"stages", "models.py"} <= set(tops) and "__init__.py" not in tops
    for top, relative in tops.items():
        before = append_line(package / relative, "an edit inside a run's code")
        assert code_version() != version, top
        (package / relative).write_bytes(before)
    assert code_version() == version
    (package / "stages" / "new_stage.py").write_text("X = 1\n")
    assert code_version() != version


def test_editing_a_figure_draws_the_profile_stages_again_but_reruns_no_run(
    cross, tmp_path, package, notebooks
):
    results = tmp_path / "results"
    profile_path = write_profile(tmp_path / "mine.yml", cross)
    store = fill_store(profile_path, results)
    profile = load_profile(profile_path)

    keys = profile_stage_keys(profile, store)
    append_line(package / "pipeline" / "store.py", "machinery")
    assert (
        all_complete(statuses(profile_path, results)) and profile_stage_keys(profile, store) == keys
    )
    append_line(package / "publish" / "figure2.py", "a figure drawn differently")
    assert all_complete(statuses(profile_path, results))
    changed = profile_stage_keys(profile, store)
    assert all(changed[s] != keys[s] for s in keys)

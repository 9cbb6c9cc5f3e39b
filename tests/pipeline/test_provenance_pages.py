"""Every generated results page says which profile, code version and dates its numbers come
from, and flags a run of another version of the science code (`pages.provenance_note`).

The pages are assembled from a small fake store (records, the committed notebooks marked as
executed, a summary): nothing is trained or executed, and no book is built. That editing the
machinery leaves the code version alone is tested in test_invalidation.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from dpmia_utils import paths
from dpmia_utils.jsonio import atomic_write_json
from dpmia_utils.pipeline.codeversion import PROFILE_STAGES, RUN_STAGES, code_version
from dpmia_utils.pipeline.store import RECORD_SCHEMA_VERSION, ProfileStore
from dpmia_utils.publish import book, chapters, figure2, pages

PROFILE = "tiny"
FINISHED = "2026-11-29T21:00:00+00:00"
#: run ID: (label, params, rdp-classic epsilon)
RUNS = {
    "base": ("lasso l1=0.001352", {"model": "lasso", "l1": 0.001352, "dp": False}, None),
    "dp10": (
        "lasso l1=0.001352 dp",
        {"model": "lasso", "l1": 0.001352, "dp": True, "noise_multiplier": 1.0},
        10.0,
    ),
    "cnn0": ("cnn l1=0", {"model": "cnn", "l1": 0.0, "dp": False}, None),
}
#: The pages that paste the results notebook's numbers, each opening with profile.md.
QUOTING_PAGES = ("results", "sparsity", "turning_point")


def _executed(stage: str, destination: Path) -> None:
    """The committed notebook, marked as papermill leaves a clean execution."""
    nb = nbformat.read(paths.notebooks_dir() / f"{stage}.ipynb", as_version=4)
    nb.metadata["papermill"] = {"exception": None, "end_time": FINISHED}
    nbformat.write(nb, destination)


def fake_store(root: Path, versions: dict[str, str]) -> ProfileStore:
    """A profile whose runs look complete, each made by the code version `versions` gives."""
    store = ProfileStore.for_profile(PROFILE, root)
    store.stages_dir.mkdir(parents=True)
    for stage in PROFILE_STAGES:
        _executed(stage, store.stages_dir / f"{stage}.ipynb")
    rows = []
    for rid, (label, params, epsilon) in RUNS.items():
        folder = store.run_dir(rid)
        folder.mkdir(parents=True)
        for stage, _ in RUN_STAGES:
            _executed(stage, folder / f"{stage}.ipynb")
        record = {
            "schema_version": RECORD_SCHEMA_VERSION,
            "run_id": rid,
            "profile": PROFILE,
            "group": "g",
            "params": params,
            "target": {
                "test_accuracy_mean": 0.7,
                "train_accuracy_mean": 0.8,
                "epsilon": {"rdp-classic": epsilon} if epsilon else {},
            },
            "attack": {"attacks": {}},
            "notebooks": [f"{stage}.ipynb" for stage, _ in RUN_STAGES],
            "provenance": {"code_version": versions[rid], "finished": FINISHED},
        }
        atomic_write_json(folder / "record.json", record)
        rows.append(
            {
                "run_id": rid,
                "label": label,
                "status": "complete",
                **params,
                "code_version": versions[rid],
                "finished": FINISHED,
            }
        )
    pd.DataFrame(rows).to_csv(store.summary_path, index=False)
    return store


@pytest.fixture
def assembled(tmp_path, monkeypatch):
    """Assemble the fake profile's pages; returns (generated folder, current code version)."""
    # The Table 1 and epsilon pages read other profiles; they have their own test below.
    monkeypatch.setattr(book, "write_table1_page", lambda path: path.write_text("# Table 1\n"))
    monkeypatch.setattr(book, "write_epsilon_page", lambda path: path.write_text("# Eps\n"))
    current = code_version()

    def assemble(versions: dict[str, str]) -> Path:
        results = tmp_path / f"results-{len(list(tmp_path.iterdir()))}"
        fake_store(results, {rid: versions.get(rid, current) for rid in RUNS})
        book_root = tmp_path / f"book-{results.name}"
        book.assemble(PROFILE, results, book_root=book_root)
        return book_root / book.GENERATED

    return assemble, current


def _cells(notebook: Path) -> list[tuple[str | None, str]]:
    """(id, text) of each cell of a notebook."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return [(c.get("id"), "".join(c["source"])) for c in cells]


def _notes(notebook: Path) -> list[str]:
    return [text for cell_id, text in _cells(notebook) if cell_id == chapters.NOTE_CELL_ID]


def test_note_names_the_profile_and_flags_other_versions_by_label():
    summary = pd.DataFrame(
        {
            "run_id": ["a", "b", "c"],
            "label": ["lasso l1=0", "cnn l1=0", "cnn l1=0.001352"],
            "status": ["complete", "complete", "missing"],
            "code_version": ["v2", "v1", None],
            "finished": ["2026-11-30T01:00:00+00:00", "2026-11-29T21:00:00+00:00", None],
        }
    )
    flagged = pages.provenance_note(summary, current="v2", profile="quick")
    assert flagged.startswith("Profile `quick`: **1 of 2 run(s) were computed by another")
    assert "(`v1`; current `v2`), finished 2026-11-29 to 2026-11-30: cnn l1=0." in flagged
    same = pages.provenance_note(summary.iloc[:1], current="v2", profile="quick")
    assert same == (
        "Profile `quick`: computed by the current science code (version `v2`), "
        "finished 2026-11-30 to 2026-11-30.\n"
    )
    # A complete run without a finishing time does not make the dates read "nan".
    undated = summary.iloc[:1].assign(finished=[None])
    assert "nan" not in pages.provenance_note(undated, current="v2", profile="quick")
    # Without a profile the note reads as before (the Table 1 page names its profile itself).
    assert pages.provenance_note(summary.iloc[:1], current="v2").startswith(
        "Computed by the current science code (version `v2`)"
    )
    unrecorded = pages.provenance_note(summary.drop(columns="code_version"), profile="quick")
    assert unrecorded.startswith("Profile `quick`: code version of these runs: not recorded")


def test_every_results_page_says_current_code_and_the_profile(assembled):
    assemble, current = assembled
    generated = assemble({})
    note = (
        f"Profile `{PROFILE}`: computed by the current science code (version `{current}`), "
        "finished 2026-11-29 to 2026-11-29."
    )
    # results, sparsity and turning_point open with profile.md (Figure 2 and the glued numbers).
    for page in QUOTING_PAGES:
        source = (paths.REPO_ROOT / "book" / f"{page}.md").read_text(encoding="utf-8")
        assert "```{include} _generated/profile.md" in source, page
    assert note in (generated / "profile.md").read_text(encoding="utf-8")
    # The results notebook's page, once, after its front and before its prerequisites.
    (curves,) = _notes(generated / "04_curve_fitting.ipynb")
    assert note in curves and curves.startswith("```{note}")
    ids, texts = zip(*_cells(generated / "04_curve_fitting.ipynb"), strict=True)
    prerequisites = next(i for i, t in enumerate(texts) if t.startswith("## Prerequisites"))
    assert ids.index(chapters.NOTE_CELL_ID) < prerequisites
    # The training and attack pages: the two runs they show, before the first of them.
    for stage, _ in RUN_STAGES:
        (chapter,) = _notes(generated / f"{stage}.ipynb")
        assert note in chapter, stage
        ids, texts = zip(*_cells(generated / f"{stage}.ipynb"), strict=True)
        heading = next(i for i, t in enumerate(texts) if t.startswith("## Without DP"))
        assert ids.index(chapters.NOTE_CELL_ID) < heading, stage
    # Data preparation shows the data, not runs: no note.
    assert _notes(generated / "01_data_prep.ipynb") == []


def test_a_run_of_another_code_version_is_flagged_where_its_numbers_are_shown(assembled):
    assemble, current = assembled
    # The DP run shown on the training and attack pages was made by older science code.
    generated = assemble({"dp10": "0ld0ld0ld0ld0ld0"})
    flag = "**1 of 3 run(s) were computed by another version of the science code** (`0ld0ld"
    profile_md = (generated / "profile.md").read_text(encoding="utf-8")
    assert f"Profile `{PROFILE}`: {flag}" in profile_md and ": lasso l1=0.001352 dp." in profile_md
    assert flag in _notes(generated / "04_curve_fitting.ipynb")[0]
    for stage, _ in RUN_STAGES:
        (chapter,) = _notes(generated / f"{stage}.ipynb")
        assert "**1 of 2 run(s) were computed by another version" in chapter, stage
        assert f"current `{current}`" in chapter and "lasso l1=0.001352 dp." in chapter
    # A run the chapters do not show flags the profile's pages, not the chapters.
    generated = assemble({"cnn0": "0ld0ld0ld0ld0ld0"})
    assert ": cnn l1=0." in (generated / "profile.md").read_text(encoding="utf-8")
    for stage, _ in RUN_STAGES:
        (chapter,) = _notes(generated / f"{stage}.ipynb")
        assert "computed by the current science code" in chapter and "cnn" not in chapter


def test_table1_page_names_each_profile_and_flags_older_runs(tmp_path, monkeypatch):
    published, local = tmp_path / "published", tmp_path / "results"
    monkeypatch.setattr(paths, "published_dir", lambda: published)
    monkeypatch.setattr(paths, "results_dir", lambda: local)
    monkeypatch.setattr(pages, "code_version", lambda: "v2")
    store = ProfileStore.for_profile(pages.TABLE1_PROFILES[0], published)
    row = {
        "run_id": "r1", "status": "complete", "label": "lasso l1=0", "dp": False,
        "model": "lasso", "l1": 0.0, "loss": "logits", "learning_rate": 0.001, "epochs": 50,
        "batch_size": 16, "target_test_accuracy_mean": 0.77, "target_test_accuracy_std": 0.02,
        "shadow_accuracy_mean": 0.60, "shadow_accuracy_std": 0.01, "code_version": "v2",
        "finished": FINISHED,
    }  # fmt: skip
    older = {**row, "run_id": "r2", "label": "cnn l1=0", "model": "cnn", "code_version": "v1"}
    for rid in ("r1", "r2"):
        store.run_dir(rid).mkdir(parents=True)
        atomic_write_json(store.run_dir(rid) / "record.json", {"target": {"selection": None}})
    page = tmp_path / "table1.md"

    pd.DataFrame([row]).to_csv(store.summary_path, index=False)
    pages.write_table1_page(page)
    text = page.read_text(encoding="utf-8")
    assert "Profile `table1`: computed by the current science code (version `v2`)" in text

    pd.DataFrame([row, older]).to_csv(store.summary_path, index=False)
    pages.write_table1_page(page)
    text = page.read_text(encoding="utf-8")
    assert "Profile `table1`: **1 of 2 run(s) were computed by another version" in text
    assert "(`v1`; current `v2`), finished 2026-11-29 to 2026-11-29: cnn l1=0." in text
    # The profile not computed here says so, with no note.
    assert "Not computed on this machine" in text and "Profile `table1-described`" not in text


def test_a_grid_of_older_or_missing_runs_is_counted_not_listed():
    """A grid computed across sessions (84 runs, most of them missing or older) must not turn
    the results page's note into a paragraph of labels: older runs are counted by group, and
    a long list of missing runs is folded into a dropdown."""
    n = 20
    summary = pd.DataFrame(
        {
            "run_id": [f"r{i:02d}" for i in range(n)],
            "label": [f"cnn l1=0 dp noise={i}" for i in range(n)],
            "group": ["dp-cnn"] * 12 + ["dp-lasso"] * 8,
            "status": ["complete"] * n,
            "code_version": ["v1"] * n,
            "finished": [FINISHED] * n,
        }
    )
    note = pages.provenance_note(summary, current="v2", profile="paper")
    assert "**20 of 20 run(s) were computed by another version" in note
    assert "runs of group `dp-cnn` (12), group `dp-lasso` (8)." in note
    assert "noise=3" not in note
    # A handful is still named, so a reader sees which runs.
    few = pages.provenance_note(summary.iloc[:3], current="v2", profile="paper")
    assert "cnn l1=0 dp noise=0, cnn l1=0 dp noise=1, cnn l1=0 dp noise=2." in few

    gap = summary.assign(status="missing")
    folded = pages.gap_markdown(gap)
    assert folded.startswith(":::{dropdown} The 20 runs, one per row\n| run |")
    assert folded.endswith(":::\n") and folded.count("| `r") == n
    short = pages.gap_markdown(gap.iloc[: figure2.FOLDED_GAP_ROWS])
    assert short.startswith("| run |") and ":::" not in short

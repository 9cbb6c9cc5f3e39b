"""The smoke grid end to end: runner -> records -> summary -> curves notebook -> strict book."""

from __future__ import annotations

import ast
import copy
import html
import json
import math
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from dpmia_utils.paths import notebooks_dir, parameters_dir
from dpmia_utils.pipeline.grid import run_grid
from dpmia_utils.pipeline.profiles import load_profile
from dpmia_utils.pipeline.store import ProfileStore, validate_executed_notebook
from dpmia_utils.stages import data_fingerprint


def test_every_smoke_run_completes_with_a_valid_record(smoke_grid):
    report, root = smoke_grid
    assert report.ok, report.failed
    store = ProfileStore(root)
    profile = load_profile(parameters_dir() / "smoke.yml")
    assert len(list(store.complete_run_ids())) == len(profile.runs)
    for rid in store.complete_run_ids():
        record = store.load_record(rid)  # validates schema and executed notebooks
        provenance = record["provenance"]
        assert provenance["data_checksum"] == data_fingerprint(profile.blocks["data"])
        # The kernels' CPU time is theirs (not zero: they were reaped) and fits in the wall
        # time on this machine's cores; the load average is the machine's at the finish.
        cores = os.cpu_count() or 1
        assert 0 < provenance["kernel_cpu_seconds"] <= provenance["seconds"] * cores * 1.05
        assert len(provenance["load_average"]) == 3
        target = record["target"]
        assert 0.0 <= target["test_accuracy_mean"] <= 1.0
        assert len(target["fold_test_accuracy"]) == profile.blocks["split"]["folds"]
        assert set(record["attack"]["attacks"]) == {"shadow", "loss", "lira"}
        # Members and non-members of every attack evaluation are balanced.
        for summary in record["attack"]["attacks"]["lira"]["repeats"]:
            assert summary["n_members"] == summary["n_nonmembers"] > 0


def test_dp_runs_report_epsilon_under_all_accountants(smoke_grid):
    _, root = smoke_grid
    summary = pd.read_csv(root / "summary.csv")
    dp = summary[summary["dp"]]
    assert len(dp) == 2  # the dp run and dp-longer, the same setting for twice the epochs
    for _, row in dp.iterrows():
        assert 0 < row["epsilon_pld"] <= row["epsilon_rdp"] <= row["epsilon_rdp_classic"] < math.inf
    short, long = dp.sort_values("epochs")["epsilon_rdp"]
    assert short < long
    baseline = summary[~summary["dp"]]
    assert (baseline["epsilon_rdp"] == math.inf).all()
    assert (summary["status"] == "complete").all()


def test_profile_stage_notebooks_executed(smoke_grid):
    _, root = smoke_grid
    for stage in ("01_data_prep", "04_curve_fitting"):
        validate_executed_notebook(root / "stages" / f"{stage}.ipynb")


def test_rerun_skips_complete_runs_and_stages(smoke_grid, isolated_store):
    _, root = smoke_grid
    records = {p: p.stat().st_mtime_ns for p in root.rglob("record.json")}
    # Every executed notebook: the runs' stages and the once-per-profile stages.
    notebooks = {p: p.stat().st_mtime_ns for p in root.rglob("*.ipynb")}
    assert {root / "stages" / f"{s}.ipynb" for s in ("01_data_prep", "04_curve_fitting")} <= set(
        notebooks
    )
    report = run_grid(
        parameters_dir() / "smoke.yml", results_root=isolated_store / "results", progress=False
    )
    assert report.ok and report.executed == [] and len(report.skipped) == len(records)
    # Nothing re-executed, not even the stage notebooks: no file was written again.
    assert {p: p.stat().st_mtime_ns for p in root.rglob("record.json")} == records
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.ipynb")} == notebooks


@pytest.fixture(scope="module")
def smoke_book(smoke_grid, isolated_store, tmp_path_factory):
    """The book built strictly (-W -n --keep-going) from the smoke results, in a copy."""
    from dpmia_utils.publish.book import build_book

    root = tmp_path_factory.mktemp("book")
    return build_book("smoke", results_root=isolated_store / "results", strict=True, book_root=root)


@pytest.fixture(scope="module")
def published_smoke(smoke_grid, isolated_store):
    """The smoke results as `publish` lays them out, in a private published/ folder."""
    from dpmia_utils import paths
    from dpmia_utils.publish.publication import publish_profile

    root = isolated_store / "published"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(paths, "published_dir", lambda: root)
        publish_profile("smoke", isolated_store / "results")
    return root


@pytest.fixture(scope="module")
def published_book(published_smoke, tmp_path_factory):
    """The book built strictly from the published smoke results alone (no results store)."""
    from dpmia_utils.publish.book import build_book

    root = tmp_path_factory.mktemp("published-book")
    return build_book(
        "smoke", results_root=published_smoke, published=True, strict=True, book_root=root
    )


def test_publish_keeps_every_record_and_only_the_notebooks_the_book_shows(
    smoke_grid, published_smoke
):
    from dpmia_utils.publish.publication import shown_runs

    _, root = smoke_grid
    folder = published_smoke / "smoke"
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    shown = shown_runs(ProfileStore(root))
    assert len(shown) == 2  # the Lasso baseline and a DP Lasso beside it
    expected = {"summary.csv", "stages/01_data_prep.ipynb", "stages/04_curve_fitting.ipynb"}
    for rid in ProfileStore(root).complete_run_ids():
        expected |= {f"runs/{rid}/record.json", f"runs/{rid}/params.json"}
        if rid in shown:
            expected |= {f"runs/{rid}/02_target_training.ipynb"}
            expected |= {f"runs/{rid}/03_membership_inference.ipynb"}
    assert files == expected  # no weights, no intermediate files, no other notebooks
    published = ProfileStore.for_published("smoke", published_smoke)
    for rid in published.complete_run_ids():
        assert published.load_record(rid) == ProfileStore(root).load_record(rid)


def test_the_book_builds_strictly_from_published_results_alone(published_book, smoke_book):
    assert published_book.representative_run == smoke_book.representative_run
    page = (published_book.html_dir / "book" / "results.html").read_text()
    assert "as published with the repository" in _text_of(page)


def test_a_published_store_lacking_a_shown_notebook_says_to_publish_again(
    published_smoke, tmp_path
):
    from dpmia_utils.publish.book import BookError, build_book
    from dpmia_utils.publish.publication import shown_runs

    copy = tmp_path / "published"
    shutil.copytree(published_smoke, copy)
    rid = shown_runs(ProfileStore.for_published("smoke", copy))[0]
    (copy / "smoke" / "runs" / rid / "03_membership_inference.ipynb").unlink()
    with pytest.raises(BookError, match="publish the profile again"):
        build_book("smoke", results_root=copy, published=True, book_root=tmp_path / "book")


def _text_of(markup: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", markup)))


def test_book_builds_strictly_from_smoke_results(smoke_book):
    assert smoke_book.index.exists()
    assert (smoke_book.html_dir / "book" / "_generated" / "04_curve_fitting.html").exists()
    # Every results page says which profile produced it.
    assert "smoke" in (smoke_book.html_dir / "book" / "results.html").read_text()
    # The notebooks' default parameters are removed; the values papermill injected stay.
    curves = (smoke_book.html_dir / "book" / "_generated" / "04_curve_fitting.html").read_text()
    assert "papermill injects" not in curves
    assert "results_root" in curves


@pytest.mark.browser
@pytest.mark.xdist_group("smoke_grid")  # its books come by name, from the smoke grid
@pytest.mark.parametrize("book", ["smoke_book", "published_book"])
def test_rendered_book_passes_the_browser_check(book, isolated_store, request):
    from dpmia_utils.publish.browser_check import check_site, find_chromium

    if find_chromium() is None:
        pytest.skip("Debian's chromium is not installed (make test installs it when run as root)")
    smoke_book = request.getfixturevalue(book)
    shots = isolated_store / f"screenshots-{book}"
    pages = [
        "index.html",
        "book/results.html",
        "book/_generated/04_curve_fitting.html",
        "book/_generated/02_target_training.html",
        "book/_generated/03_membership_inference.html",
    ]
    report = check_site(smoke_book.html_dir, pages, shots)
    assert report.ok, report.summary()
    assert len(list(shots.glob("*.png"))) >= len(pages)


def test_missing_runs_block_the_book_unless_allowed(smoke_grid, isolated_store, tmp_path):
    from dpmia_utils.publish.book import BookError, build_book

    _, root = smoke_grid
    summary = pd.read_csv(root / "summary.csv")
    tampered = isolated_store / "partial-results"
    shutil.copytree(isolated_store / "results", tampered)
    victim = summary["run_id"].iloc[-1]
    shutil.rmtree(tampered / "smoke" / "runs" / victim)
    summary.loc[summary["run_id"] == victim, "status"] = "missing"
    summary.to_csv(tampered / "smoke" / "summary.csv", index=False)
    with pytest.raises(BookError, match="1 run\\(s\\) of profile 'smoke' are missing"):
        build_book("smoke", results_root=tampered, book_root=tmp_path / "book")


def _text(page: Path) -> str:
    """A rendered page's words, without tags, entities or runs of whitespace."""
    words = html.unescape(re.sub(r"<[^>]+>", " ", page.read_text(encoding="utf-8")))
    return re.sub(r"\s+", " ", words)


def _glued_text(notebook: Path) -> dict[str, str]:
    """The text values a notebook glued (myst-nb `glue`), by name."""
    glued = {}
    for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            plain = output.get("data", {}).get("application/papermill.record/text/plain")
            if name and plain and plain[:1] in "'\"":  # a string, not a table or figure
                glued[name] = ast.literal_eval(plain)
    return glued


def test_glued_numbers_appear_where_the_pages_argue(smoke_book):
    generated = smoke_book.html_dir.parent.parent / "book" / "_generated"
    glued = _glued_text(generated / "04_curve_fitting.ipynb")
    paper_attack = tuple(
        f"paper_{m}_{k}_attack" for m in ("lasso", "cnn") for k in ("dense", "sparse")
    )
    pages = {
        "results": ("results_",),
        "sparsity": ("sparsity_", *paper_attack),
        "turning_point": ("tp_",),
    }
    for page, names in pages.items():
        text = _text(smoke_book.html_dir / "book" / f"{page}.html")
        quoted = [name for name in glued if name.startswith(names)]
        assert len(quoted) >= 3, (page, quoted)
        for name in quoted:
            assert re.sub(r"\s+", " ", glued[name]) in text, (page, name)
    results = _text(smoke_book.html_dir / "book" / "results.html")
    # The smoke profile has one lambda: the rows it lacks say so rather than stay blank.
    assert "not in this profile" in results and "0.5728 ± 0.0071" in results
    # Figure 2 (a) and (b), pasted from the results notebook, with their image files.
    page = smoke_book.html_dir / "book" / "results.html"
    images = re.findall(r'<img[^>]*src="([^"]+)"', page.read_text(encoding="utf-8"))
    assert len(images) >= 2 and all((page.parent / src).resolve().is_file() for src in images)
    data_glued = _glued_text(generated / "01_data_prep.ipynb")
    assert data_glued["data_splits"].startswith("In profile smoke, the target half has")
    assert data_glued["data_splits"] in _text(smoke_book.html_dir / "book" / "data.html")


def test_training_and_attack_pages_show_a_dp_run_beside_the_baseline(smoke_book, smoke_grid):
    _, root = smoke_grid
    summary = pd.read_csv(root / "summary.csv")
    dp_runs = list(summary.loc[summary["dp"], "run_id"])
    baseline = smoke_book.representative_run
    assert not summary.set_index("run_id").loc[baseline, "dp"]
    for stage in ("02_target_training", "03_membership_inference"):
        text = _text(smoke_book.html_dir / "book" / "_generated" / f"{stage}.html")
        order = [text.find(s) for s in ("Without DP: the baseline", "With DP-SGD", "Summary")]
        assert -1 not in order and order == sorted(order), stage
        assert baseline in text and sum(run in text for run in dp_runs) == 1
        assert "The same model and λ as the baseline" in text
    training = _text(smoke_book.html_dir / "book" / "_generated" / "02_target_training.html")
    # Each run's own executed outputs: the baseline has no budget, the DP run has one.
    assert "No DP: this is a baseline run" in training and "Noise multiplier" in training


def test_the_book_dresses_executed_notebooks_in_todays_prose(smoke_grid):
    from dpmia_utils.publish import chapters

    _, root = smoke_grid
    run = next(p for p in sorted((root / "runs").iterdir()) if (p / "record.json").exists())
    executed = json.loads((run / "02_target_training.ipynb").read_text(encoding="utf-8"))
    source = json.loads((notebooks_dir() / "02_target_training.ipynb").read_text())
    # An older run: other prose and no display tags, the same code.
    older = copy.deepcopy(executed)
    for cell in older["cells"]:
        if cell["cell_type"] == "markdown":
            cell["source"] = "# Prose of an older version\n"
        elif not {"parameters", "injected-parameters"} & set(cell["metadata"].get("tags", [])):
            cell["metadata"].pop("tags", None)
    dressed = chapters.redress(older, source)

    def markdown(nb):
        return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"]

    def code(nb):
        return [c for c in nb["cells"] if c["cell_type"] == "code"]

    assert markdown(dressed) == markdown(source)
    assert [c["outputs"] for c in code(dressed)] == [c["outputs"] for c in code(executed)]
    tags = [c["metadata"].get("tags", []) for c in code(dressed)]
    assert tags[:2] == [["parameters"], ["injected-parameters"]]
    assert tags[2:] == [c["metadata"].get("tags", []) for c in code(source)[1:]]
    # Two runs on one page: each run's steps under its heading, one Summary at the end.
    page = chapters.beside(dressed, dressed, "## Baseline\n", "## DP\n")
    text = markdown(page)
    assert text.count("## Baseline\n") == text.count("## DP\n") == 1
    assert sum(t.startswith(chapters.CLOSING_HEADING) for t in text) == 1
    assert text.index("## Baseline\n") < text.index("## DP\n") < len(text) - 1
    assert len({c["id"] for c in page["cells"]}) == len(page["cells"])
    alone = markdown(chapters.beside(dressed, None, "## Baseline\n", "## DP\nnone\n"))
    assert "## DP\nnone\n" in alone and sum(t.startswith("### ") for t in alone) >= 1
    # A notebook that ran other code is shown as it ran.
    changed = copy.deepcopy(source)
    code(changed)[-1]["source"] = "print('other code')"
    assert chapters.redress(older, changed) is older


TF_STARTUP_LINES = (
    "2026-11-30 19:50:34.96: E external/local_xla/xla/stream_executor/cuda/cuda_dnn.cc:9261] "
    "Unable to register cuDNN factory: Attempting to register factory for plugin cuDNN when "
    "one has already been registered\n"
    "2026-11-30 19:50:34.96: E external/local_xla/xla/stream_executor/cuda/cuda_fft.cc:607] "
    "Unable to register cuFFT factory: Attempting to register factory for plugin cuFFT when "
    "one has already been registered\n"
    "2026-11-30 19:50:34.96: E external/local_xla/xla/stream_executor/cuda/cuda_blas.cc:1515] "
    "Unable to register cuBLAS factory: Attempting to register factory for plugin cuBLAS when "
    "one has already been registered\n"
)


def test_the_book_drops_tensorflows_startup_lines_and_keeps_real_warnings():
    from dpmia_utils.publish import chapters

    warning = "UserWarning: the solver did not converge\n"
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "source": "import tensorflow",
                "outputs": [
                    {"output_type": "stream", "name": "stderr", "text": TF_STARTUP_LINES},
                    {"output_type": "stream", "name": "stdout", "text": "loaded\n"},
                ],
            },
            {
                "cell_type": "code",
                "source": "fit()",
                "outputs": [
                    {
                        "output_type": "stream",
                        "name": "stderr",
                        "text": TF_STARTUP_LINES.splitlines(True)[:1] + [warning],
                    }
                ],
            },
            {"cell_type": "markdown", "source": "Unable to register cuDNN factory (prose)"},
        ]
    }
    cleaned = chapters.without_startup_noise(copy.deepcopy(notebook))
    first, second, prose = cleaned["cells"]
    assert first["outputs"] == [notebook["cells"][0]["outputs"][1]]  # only stdout left
    assert second["outputs"] == [{"output_type": "stream", "name": "stderr", "text": warning}]
    assert prose == notebook["cells"][2]  # markdown is never touched


def test_the_smoke_book_shows_no_tensorflow_startup_lines(smoke_book):
    generated = list((smoke_book.html_dir / "book" / "_generated").glob("*.html"))
    assert generated
    for page in generated:
        assert "Unable to register" not in page.read_text(), page.name

"""Table 1 beside the paper's: reproduction labels, intervals, the page and publishing."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from dpmia_utils import paths
from dpmia_utils.pipeline.store import ProfileStore
from dpmia_utils.publish import pages, publication
from dpmia_utils.publish.tables import reproduction_label, table1_frame


@pytest.mark.parametrize(
    ("data", "label"),
    [
        ({"source": "yeast", "trait": "Diamide", "binarize": "threshold", "threshold": 0.0,
          "balance": True}, "as coded"),
        ({"source": "yeast", "trait": "CopperSulfate", "binarize": "mean", "threshold": None,
          "balance": False}, "as described"),
        ({"source": "yeast", "trait": "Diamide", "binarize": "mean", "threshold": None,
          "balance": True}, "custom data"),
        ({"source": "synthetic"}, "synthetic"),
    ],
)  # fmt: skip
def test_reproduction_labels(data, label):
    assert reproduction_label(data).startswith(label)


def _summary() -> pd.DataFrame:
    row = {
        "run_id": "r1", "status": "complete", "label": "lasso l1=0", "dp": False,
        "model": "lasso", "l1": 0.0, "loss": "logits", "learning_rate": 0.001, "epochs": 50,
        "batch_size": 16, "target_test_accuracy_mean": 0.77, "target_test_accuracy_std": 0.02,
        "shadow_accuracy_mean": 0.60, "shadow_accuracy_std": 0.01,
    }  # fmt: skip
    dp_row = {**row, "run_id": "r2", "dp": True}
    return pd.DataFrame([row, dp_row])


def test_table1_frame_intervals_and_the_two_sd_check():
    frame = table1_frame(_summary(), folds=5, repeats=5)  # beside constants.PAPER_TABLE1
    assert len(frame) == 1  # the DP run is not Table 1
    (row,) = frame.to_dict(orient="records")
    # t(0.975, 4) = 2.776: 0.77 +- 2.776 * 0.02 / sqrt(5).
    half = 2.7764451 * 0.02 / math.sqrt(5)
    assert row["target accuracy 95% CI"] == f"[{0.77 - half:.4f}, {0.77 + half:.4f}]"
    # Paper, Lasso lambda 0: target 0.7910 +- 0.0123 (0.77 is within 2 sd), attack 0.5728 +-
    # 0.0071 (0.60 is not).
    assert row["target accuracy within paper ± 2 sd"]
    assert not row["attack accuracy within paper ± 2 sd"]
    assert row["paper attack accuracy"] == "0.5728 ± 0.0071"


def test_publish_copies_records_and_summary_but_no_weights(tmp_path, monkeypatch):
    results, published = tmp_path / "results", tmp_path / "published"
    monkeypatch.setattr(paths, "published_dir", lambda: published)
    store = ProfileStore.for_profile("table1", results)
    store.runs_dir.mkdir(parents=True)
    _summary().iloc[:1].to_csv(store.summary_path, index=False)
    run = store.run_dir("r1")
    (run / "models").mkdir(parents=True)
    (run / "models" / "fold0.npz").write_bytes(b"weights")
    for name in ("record.json", "params.json"):
        (run / name).write_text(json.dumps({"target": {"selection": None}}))
    folder = publication.publish_profile("table1", results)
    assert folder == published / "table1"
    copied = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert copied == ["runs/r1/params.json", "runs/r1/record.json", "summary.csv"]


def test_epsilon_page_lists_the_papers_twenty_settings_with_its_published_values(tmp_path):
    page = tmp_path / "epsilon_table.md"
    pages.write_epsilon_page(page)
    text = page.read_text()
    rows = [line for line in text.splitlines() if line.startswith("|") and "---" not in line]
    assert len(rows) == 1 + 20  # header + the paper's 20 settings
    for published in ("2.16018", "10.0391", "15.332", "98.0023"):  # the paper's table, 6 digits
        assert published in text


def test_beside_paper_has_the_papers_four_rows_and_says_which_the_profile_lacks():
    from dpmia_utils.constants import PAPER_TABLE1
    from dpmia_utils.publish import quotes

    frame = quotes.beside_paper(_summary(), folds=5, repeats=5)
    assert len(frame) == len(PAPER_TABLE1) == 4
    lasso0 = frame.set_index("model").loc["Lasso, λ = 0"]
    half = 2.7764451 * 0.02 / math.sqrt(5)
    assert lasso0["target accuracy, ours"] == f"0.7700 [{0.77 - half:.4f}, {0.77 + half:.4f}]"
    assert lasso0["attack accuracy, paper"] == "0.5728"
    # The profile has no CNN and no lambda > 0: those rows say so instead of showing a gap.
    assert (frame.iloc[1:]["target accuracy, ours"] == "not in this profile").all()
    assert list(quotes.paper_table()["attack accuracy"])[0] == "0.5728 ± 0.0071"


def test_split_sentence_names_the_profile_and_its_folds():
    from dpmia_utils.publish.tables import describe_splits

    sizes = {
        "n_target": 1880, "n_shadow": 1882, "folds": 5,
        "fold_train_sizes": [1504] * 5, "fold_test_sizes": [376] * 5,
    }  # fmt: skip
    said = describe_splits(sizes, "table1")
    assert said.startswith("In profile table1, the target half has 1,880 individuals in 5")
    assert "trains on 1,504 and is tested on 376" in said
    uneven = {**sizes, "fold_train_sizes": [1503, 1504], "folds": 2}
    assert "trains on 1,503 to 1,504" in describe_splits(uneven, "p")


def test_a_publication_says_what_it_replaced():
    assert (
        publication.publication_change({"old": 22}, {"new": 3})
        == "3 run(s) of code new, replacing 22 run(s) of code old"
    )
    assert publication.publication_change({"v": 6}, {"v": 6}) == "6 run(s) of code v, as before"
    assert publication.publication_change({}, {"v": 1}) == "1 run(s) of code v, replacing no runs"

"""Numbers typed into the book's prose tables come from a published profile: they must equal
its summary (to the digits shown), so that republishing the profile cannot leave the page
stale."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from dpmia_utils import paths

ROOT = paths.REPO_ROOT


def _prose_table(page: str, header_start: str) -> list[list[str]]:
    """The rows (cells) of the markdown table whose header row starts with `header_start`."""
    lines = (ROOT / "book" / page).read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_the_clip_ablation_table_equals_the_published_summary():
    summary_path = ROOT / "published" / "clip-ablation" / "summary.csv"
    if not summary_path.exists():
        pytest.skip("clip-ablation is not published")
    summary = pd.read_csv(summary_path).set_index("label")
    rows = _prose_table("results.md", "| the same Lasso, learning rate 0.01")
    labels = {
        "DP-SGD": "lasso l1=0 dp noise=0.4 e100 b16",
        "clip 1.0, no noise": "lasso l1=0 dp noise=0 e100 b16",
        "plain SGD": "lasso l1=0 e100 b16",
    }
    columns = [
        "target_test_accuracy_mean",
        "target_train_accuracy_mean",
        "shadow_accuracy_mean",
        "lira_auc_mean",
    ]
    assert len(rows) == len(labels)
    for row in rows:
        (label,) = [v for k, v in labels.items() if row[0].startswith(k)]
        for shown, column in zip(row[1:], columns, strict=True):
            decimals = len(shown.split(".")[1])
            assert float(shown) == round(summary.loc[label, column], decimals), (label, column)
    epsilon = re.search(r"\\varepsilon = (\d+)\$\)", rows[0][0])
    assert epsilon and int(epsilon.group(1)) == round(
        summary.loc[labels["DP-SGD"], "epsilon_rdp_classic"]
    )

"""The results chapter's figure and tables: the paper's accountant, labels, honest tables."""

import math

import numpy as np
import pandas as pd
import pytest

from dpmia_utils.publish import figure2


def _summary():
    rows = []
    for l1 in (0.0, 0.001352):
        for eps in (1.0, 3.0, 10.0, 30.0):
            rows.append(
                dict(
                    model="lasso",
                    l1=l1,
                    dp=True,
                    epochs=50,
                    batch_size=8,
                    noise_multiplier=1 / eps,
                    target_epsilon=np.nan,
                    delta=1 / 1504,
                    # The accountants differ, so the axis shows which one was plotted.
                    epsilon_rdp=eps / 2,
                    epsilon_pld=eps / 3,
                    epsilon_rdp_classic=eps,
                    target_test_accuracy_mean=0.6 + 0.02 * np.log(eps),
                    target_test_accuracy_std=0.01,
                    majority_class_rate=0.5,
                    status="complete",
                    label=f"lasso {l1} {eps}",
                )
            )
        rows.append(
            dict(
                model="lasso",
                l1=l1,
                dp=False,
                epochs=100,
                batch_size=16,
                epsilon_rdp=np.inf,
                epsilon_pld=np.inf,
                epsilon_rdp_classic=np.inf,
                target_test_accuracy_mean=0.8,
                target_test_accuracy_std=0.01,
                majority_class_rate=0.5,
                status="complete",
                label=f"lasso {l1} no DP",
            )
        )
    return pd.DataFrame(rows)


def test_figure_plots_the_paper_accountant_and_says_so():
    import matplotlib.pyplot as plt

    summary = _summary()
    fig = figure2.privacy_figure(
        summary,
        "target_test_accuracy",
        ylabel="(a) target accuracy",
        profile="paper",
        reproduction="as coded (Diamide, > 0, balanced)",
        chance=0.5,
    )
    ax = fig.axes[0]
    assert "paper's accountant" in ax.get_xlabel()
    # The first λ's points sit at the classic epsilons, not the RDP or PLD ones.
    points = ax.containers[0].lines[0].get_xdata()
    assert sorted(points) == [1.0, 3.0, 10.0, 30.0]
    # A fit line through the band spans the classic epsilon range.
    fitted = [line for line in ax.lines if len(line.get_xdata()) == 200]
    assert fitted and fitted[0].get_xdata()[0] == pytest.approx(1.0)
    caption = " ".join(t.get_text() for t in fig.texts)
    assert "paper" in caption and "as coded" in caption
    plt.close(fig)


def test_figure_of_an_unmeasured_metric_is_none():
    assert (
        figure2.privacy_figure(
            _summary(), "lira_auc", ylabel="AUC", profile="p", reproduction="r", chance=0.5
        )
        is None
    )


def test_majority_class_rate_comes_from_the_records_and_must_agree():
    summary = _summary()
    assert figure2.majority_class_rate(summary) == 0.5
    # A missing run has no counts: it is ignored, not averaged in.
    gap = pd.DataFrame([dict(status="missing", majority_class_rate=np.nan, dp=False)])
    assert figure2.majority_class_rate(pd.concat([summary, gap])) == 0.5
    mixed = summary.assign(majority_class_rate=np.where(summary["dp"], 0.5, 0.6))
    with pytest.raises(ValueError, match="disagree"):
        figure2.majority_class_rate(mixed)
    assert math.isnan(figure2.majority_class_rate(summary.drop(columns="majority_class_rate")))


def test_epsilon_table_has_every_accountant_once_per_setting():
    table = figure2.epsilon_table(_summary())
    assert list(table.columns) == [
        "model",
        "epochs",
        "batch_size",
        "noise_multiplier",
        "delta",
        "epsilon_rdp",
        "epsilon_pld",
        "epsilon_rdp_classic",
    ]  # target_epsilon is unused in a noise grid, so not shown
    assert len(table) == 4  # both lambdas share each setting and its epsilons
    assert (table["epsilon_rdp_classic"] == 2 * table["epsilon_rdp"]).all()


def test_ablation_rows_are_named_and_ours_are_untouched():
    frame = pd.DataFrame({"loss": ["logits", "paper-double-sigmoid"]})
    assert list(figure2.mark_ablations(frame)["loss"]) == [
        "logits",
        "paper-double-sigmoid (ablation)",
    ]


def test_numbers_keep_small_lambdas_and_show_gaps():
    assert figure2.format_number(0.001352) == "0.001352"
    assert figure2.format_number(0.79634) == "0.7963"
    assert figure2.format_number(np.float64(np.nan)) == "-"
    assert figure2.format_number(50) == "50"
    assert figure2.format_number(pd.NA) == "-"
    assert figure2.format_number("lasso") == "lasso"


def test_header_names_profile_reproduction_folds_and_gaps():
    summary = pd.concat(
        [_summary(), pd.DataFrame([dict(status="failed", dp=True, label="lasso broken")])]
    )
    text = figure2.chapter_header("quick", "as coded (Diamide, > 0, balanced)", summary, 2, 3)
    assert "**quick**" in text and "as coded" in text
    assert "10 of 11 configurations complete (8 with DP, 2 without)" in text
    assert "2 CV folds" in text and "3 attack repeats" in text
    assert "Missing or failed: 1" in text and "lasso broken" in text

"""The results chapter's figure and tables: the paper's accountant, labels, honest tables."""

import math

import numpy as np
import pandas as pd
import pytest

from dpmia_utils.curves import PAPER_ACCOUNTANT, fit_curves
from dpmia_utils.publish import figure2, quotes


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
    assert "<details>" not in text  # a short gap is listed as it is


def test_header_folds_a_long_gap_and_still_lists_every_run():
    gap = pd.DataFrame(
        [dict(status="missing", dp=True, label=f"cnn dp noise={i}") for i in range(11)]
    )
    text = figure2.chapter_header("paper", "as coded", pd.concat([_summary(), gap]), 5, 5)
    assert "Missing or failed: 11" in text
    folded = text[text.index("<details>") : text.index("</details>")]
    assert all(f"cnn dp noise={i} " in folded for i in range(11))


def test_a_figure_the_profile_lacks_is_glued_as_a_note():
    note = figure2.gluable(None, "the shadow-model attack did not run")
    assert "Not in this profile: the shadow-model attack did not run" in note.data
    marker = object()
    assert figure2.gluable(marker, "unused") is marker


def _measured(summary: pd.DataFrame) -> pd.DataFrame:
    """_summary() with the attack columns and run facts the quotes read."""
    rng = np.random.default_rng(0)
    return summary.assign(
        loss="logits",
        n_train=1504,
        shadow_accuracy_mean=0.5 + 0.05 * rng.random(len(summary)),
        shadow_accuracy_std=0.01,
        target_nonzero_fraction_mean=np.where(summary["l1"] > 0, 0.998, 1.0),
        lira_auc_mean=0.6,
        **{"lira_tpr_at_fpr_0.01_mean": 0.02},
    )


def _quotes(summary: pd.DataFrame) -> dict[str, str]:
    dp = summary[summary["dp"]] if len(summary) else summary
    curves = fit_curves(
        dp, ("target_test_accuracy_mean",), epsilon_column=PAPER_ACCOUNTANT, n_bootstrap=50
    )
    return quotes.book_quotes(summary, curves, repeats=5)


def test_every_quote_is_there_for_every_profile_and_says_when_it_is_missing():
    full = _measured(_summary())
    no_dp = full[~full["dp"]]
    one_lambda = full[full["l1"] > 0]
    keys = set(_quotes(full))
    # The strict build fails on a name a page pastes but the notebook did not glue.
    for summary in (no_dp, one_lambda):
        assert set(_quotes(summary)) == keys
    assert _quotes(no_dp)["tp_design"].startswith(quotes.NOT_IN_PROFILE)
    assert _quotes(no_dp)["results_dp_attack"].startswith(quotes.NOT_IN_PROFILE)
    assert _quotes(one_lambda)["sparsity_effect1"].startswith(quotes.NOT_IN_PROFILE)
    assert not any(v.startswith(quotes.NOT_IN_PROFILE) for k, v in _quotes(full).items()
                   if k.startswith("tp_"))  # fmt: skip


def test_turning_point_quotes_give_the_design_knee_and_the_fitted_knees():
    said = _quotes(_measured(_summary()))
    # Classic epsilons 1, 3, 10, 30: the logarithmic mean of the range is 29 / ln 30 = 8.53.
    assert "ε = 1 to 30" in said["tp_design"] and "ε* = 8.53" in said["tp_design"]
    assert "4 distinct values of ε" in said["tp_distinct"]
    assert said["tp_fitted"].count("8.53") == 4  # each lambda: its knee and its ε*
    assert "Lasso, λ = 0: b = 0.02" in said["tp_slopes"] and "excludes 0" in said["tp_slopes"]


def test_sparsity_and_results_quotes_read_the_profile():
    said = _quotes(_measured(_summary()))
    assert "is 99.80% without DP and 99.80% with DP" in said["sparsity_nonzero"]
    assert (
        "for the Lasso" in said["sparsity_effect1"]
        and "at λ = 0.001352" in said["sparsity_effect1"]
    )
    assert "4 DP settings" in said["sparsity_effect23"]
    assert said["results_n_train"] == "In this profile a training fold has 1,504 individuals."
    assert "smallest ε of this profile (1, rdp-classic)" in said["results_dp_attack"]
    assert said["paper_lasso_dense_attack"] == "0.5728"
    assert said["paper_cnn_sparse_attack"] == "0.5628"

"""Figures of the study: each function draws one figure and returns it, so notebooks stay thin."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..metrics import roc_curve_points


def _caption(ax: plt.Axes, profile: str | None) -> None:
    if profile:
        ax.figure.text(
            0.995, 0.005, f"profile: {profile}", ha="right", va="bottom", fontsize=7, alpha=0.7
        )


def phenotype_distribution(
    phenotype: np.ndarray, threshold: float, trait: str, profile: str | None = None
) -> plt.Figure:
    """Histogram of the raw trait with the binarisation threshold and the class sizes."""
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    values = phenotype[np.isfinite(phenotype)]
    sns.histplot(values, bins=60, ax=ax, color="#4c72b0")
    ax.axvline(threshold, color="#c44e52", lw=2, label=f"threshold {threshold:.3f}")
    above = int(np.sum(values > threshold))
    ax.set(
        xlabel=f"{trait} (normalised growth)",
        ylabel="segregants",
        title=f"{values.size} segregants: {values.size - above} class 0, {above} class 1",
    )
    ax.legend()
    _caption(ax, profile)
    fig.tight_layout()
    return fig


def allele_frequency_along_genome(
    genotypes: np.ndarray, positions: pd.DataFrame, profile: str | None = None
) -> plt.Figure:
    """RM-allele frequency of every variant along the genome, one colour per chromosome."""
    frequency = genotypes.mean(axis=0)
    frame = positions.assign(frequency=frequency, index=np.arange(frequency.size))
    fig, ax = plt.subplots(figsize=(10, 3.2))
    chromosomes = list(dict.fromkeys(frame["chromosome"].fillna("?")))
    palette = sns.color_palette("tab20", n_colors=max(len(chromosomes), 1))
    for colour, chromosome in zip(palette, chromosomes, strict=False):
        part = frame[frame["chromosome"].fillna("?") == chromosome]
        ax.plot(part["index"], part["frequency"], ".", ms=1.5, color=colour)
        ax.text(
            part["index"].mean(),
            1.02,
            str(chromosome).replace("chr", ""),
            ha="center",
            fontsize=7,
            transform=ax.get_xaxis_transform(),
        )
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set(xlabel="variant (genome order)", ylabel="RM allele frequency", ylim=(0, 1))
    _caption(ax, profile)
    fig.tight_layout()
    return fig


def genotype_heatmap(
    genotypes: np.ndarray, n_samples: int = 60, n_variants: int = 400, profile: str | None = None
) -> plt.Figure:
    """A slice of the genotype matrix: linkage shows as long runs of one allele."""
    block = genotypes[:n_samples, :n_variants]
    fig, ax = plt.subplots(figsize=(10, 3.5))
    ax.imshow(block, aspect="auto", cmap="coolwarm", interpolation="nearest")
    ax.set(
        xlabel=f"first {block.shape[1]} variants",
        ylabel=f"first {block.shape[0]} segregants",
        title="Genotypes (blue: BY allele, red: RM allele)",
    )
    _caption(ax, profile)
    fig.tight_layout()
    return fig


def learning_curves(
    histories: Sequence[dict[str, list[float]]], profile: str | None = None
) -> plt.Figure:
    """Training and validation loss/accuracy per epoch, one line per fold."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for fold, history in enumerate(histories):
        for ax, key in zip(axes, ("loss", "accuracy"), strict=True):
            epochs = np.arange(1, len(history[key]) + 1)
            ax.plot(epochs, history[key], color=f"C{fold}", lw=1.2, label=f"fold {fold} train")
            if history.get(f"val_{key}"):
                ax.plot(
                    epochs,
                    history[f"val_{key}"],
                    color=f"C{fold}",
                    lw=1.2,
                    ls="--",
                    label=f"fold {fold} test",
                )
    axes[0].set(xlabel="epoch", ylabel="loss (BCE)")
    axes[1].set(xlabel="epoch", ylabel="accuracy")
    axes[1].legend(fontsize=7, ncol=2)
    _caption(axes[1], profile)
    fig.tight_layout()
    return fig


def fold_accuracies(
    train: Sequence[float], test: Sequence[float], profile: str | None = None
) -> plt.Figure:
    """Train and test accuracy of each CV fold."""
    frame = pd.DataFrame(
        {
            "fold": np.arange(len(train)).repeat(2),
            "split": ["train", "test"] * len(train),
            "accuracy": np.ravel(np.column_stack([train, test])),
        }
    )
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    sns.barplot(frame, x="fold", y="accuracy", hue="split", ax=ax)
    ax.set(ylim=(0.4, 1.0))
    _caption(ax, profile)
    fig.tight_layout()
    return fig


def weight_distribution(
    weights: np.ndarray, sparsity: float, profile: str | None = None
) -> plt.Figure:
    """Histogram of kernel weights (log count), with the fraction that is non-zero."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.hist(weights, bins=100, color="#55a868", log=True)
    ax.set(xlabel="kernel weight", ylabel="count (log)", title=f"non-zero weights: {sparsity:.1%}")
    _caption(ax, profile)
    fig.tight_layout()
    return fig


def roc_curves(
    curves: dict[str, tuple[np.ndarray, np.ndarray]], profile: str | None = None
) -> plt.Figure:
    """ROC curves of several attacks on linear and log-log axes (scores, is_member per attack)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for name, (scores, is_member) in curves.items():
        fpr, tpr, _ = roc_curve_points(scores, is_member)
        for ax in axes:
            ax.plot(fpr, tpr, lw=1.4, label=name)
    for ax in axes:
        ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=0.8)
        ax.set(xlabel="false positive rate", ylabel="true positive rate")
    axes[1].set(
        xscale="log",
        yscale="log",
        xlim=(1e-3, 1),
        ylim=(1e-3, 1),
        title="log-log: the low-FPR regime",
    )
    axes[0].set(title="linear")
    axes[0].legend(fontsize=8)
    _caption(axes[1], profile)
    fig.tight_layout()
    return fig


def score_histograms(
    curves: dict[str, tuple[np.ndarray, np.ndarray]], profile: str | None = None
) -> plt.Figure:
    """Member vs non-member score distributions, one panel per attack."""
    fig, axes = plt.subplots(1, len(curves), figsize=(3.6 * len(curves), 3.2), squeeze=False)
    for ax, (name, (scores, is_member)) in zip(axes[0], curves.items(), strict=True):
        is_member = np.asarray(is_member, bool)
        bins = np.histogram_bin_edges(scores, bins=40)
        ax.hist(scores[is_member], bins=bins, alpha=0.6, label="members", density=True)
        ax.hist(scores[~is_member], bins=bins, alpha=0.6, label="non-members", density=True)
        ax.set(title=name, xlabel="attack score")
    axes[0][0].legend(fontsize=8)
    _caption(axes[0][-1], profile)
    fig.tight_layout()
    return fig


def risk_vs_outlierness(
    risk: pd.DataFrame, outlier_column: str = "knn_distance", profile: str | None = None
) -> plt.Figure:
    """Per-individual attack risk against distance to the rest of the cohort."""
    fig, ax = plt.subplots(figsize=(6, 4))
    sns.scatterplot(risk, x=outlier_column, y="risk", hue="is_member", ax=ax, s=12, alpha=0.7)
    ax.set(xlabel="genotype distance to nearest neighbours", ylabel="attack risk (mean rank)")
    _caption(ax, profile)
    fig.tight_layout()
    return fig


def privacy_curve(
    summary: pd.DataFrame,
    metric: str,
    fits: dict[tuple[str, float], Any],
    *,
    ylabel: str,
    epsilon_column: str = "epsilon_rdp",
    profile: str | None = None,
    chance: float | None = None,
    chance_label: str = "chance",
) -> plt.Figure:
    """The paper's Figure 2 layout: metric vs epsilon, points, log fits, 95% bands, no-DP lines.

    `fits` maps (model, l1) to a curves.LogFit; one panel per model, one colour per lambda.
    `chance` draws the score of a model that learned nothing (e.g. the majority-class rate for
    accuracy) as a grey dashed line, so a flat curve at that level reads as "no signal".
    """
    models = [m for m in ("lasso", "cnn") if m in set(summary["model"])]
    finite = summary.loc[summary["dp"], epsilon_column]
    finite = finite[np.isfinite(finite) & (finite > 0)]
    # A panel with only no-DP baselines still needs a positive range for its log axis.
    xlim = (finite.min() / 2, finite.max() * 2) if len(finite) else (0.5, 500.0)
    fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 4), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        part = summary[summary["model"] == model]
        for colour, (l1, group) in zip(("#4c72b0", "#dd8452"), part.groupby("l1"), strict=False):
            dp = group[group["dp"] & np.isfinite(group[epsilon_column])]
            ax.errorbar(
                dp[epsilon_column],
                dp[f"{metric}_mean"],
                yerr=dp.get(f"{metric}_std"),
                fmt="o",
                ms=4,
                color=colour,
                alpha=0.8,
                label=f"λ={l1:g}",
            )
            fit = fits.get((model, float(l1)))
            if fit is not None:
                grid = np.geomspace(*fit.epsilon_range, 200)
                band = fit.predict(grid)
                ax.plot(grid, band["fit"], color=colour, lw=1.5)
                ax.fill_between(grid, band["lower"], band["upper"], color=colour, alpha=0.2)
            baseline = group[~group["dp"]][f"{metric}_mean"]
            if len(baseline):
                ax.axhline(
                    float(baseline.mean()), color=colour, ls=":", lw=1.5, label=f"λ={l1:g}, no DP"
                )
        if chance is not None:
            ax.axhline(chance, color="0.45", ls="--", lw=1, label=chance_label)
        ax.set(
            xscale="log",
            xlim=xlim,
            xlabel="ε (" + epsilon_column.replace("epsilon_", "") + ")",
            ylabel=ylabel,
            title=model.upper() if model == "cnn" else "Lasso",
        )
        ax.legend(fontsize=8)
    _caption(axes[0][-1], profile)
    fig.tight_layout()
    return fig

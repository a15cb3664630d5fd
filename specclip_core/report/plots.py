"""Plots written by stages (PNG, matplotlib's Agg backend: no display needed)."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_training_curves(metrics_csv: str | Path, out_png: str | Path, title: str = "") -> Path:
    """Train and validation loss per epoch from a loop's metrics.csv."""
    with open(metrics_csv) as handle:
        rows = list(csv.DictReader(handle))
    epochs = [int(r["epoch"]) for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=120)
    ax.plot(epochs, [float(r["train_loss"]) for r in rows], "o-", label="train")
    val = [float(r["val_loss"]) for r in rows]
    if any(v == v for v in val):
        ax.plot(epochs, val, "s-", label="validation")
    ax.set(xlabel="epoch", ylabel="loss", title=title)
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)
    return Path(out_png)


def plot_one_to_one(truth, predicted, out_png: str | Path, label: str, unit: str = "", title: str = "") -> Path:
    """Predicted against true values (density where crowded) with the residuals below; sigma and R^2 in the corner."""
    import numpy as np

    from specclip_core.heads.metrics import regression_metrics

    truth, predicted = np.asarray(truth, float), np.asarray(predicted, float)
    keep = np.isfinite(truth) & np.isfinite(predicted)
    truth, predicted = truth[keep], predicted[keep]
    metrics = regression_metrics(truth, predicted)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(4.6, 5.6), dpi=120, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    lo, hi = np.percentile(np.concatenate([truth, predicted]), [0.5, 99.5]) if truth.size else (0, 1)
    pad = 0.05 * (hi - lo or 1)
    lo, hi = lo - pad, hi + pad
    if truth.size > 2000:
        top.hexbin(truth, predicted, gridsize=70, extent=(lo, hi, lo, hi), bins="log", cmap="viridis", mincnt=1)
        bottom.hexbin(truth, predicted - truth, gridsize=(70, 25), bins="log", cmap="viridis", mincnt=1)
    else:
        top.scatter(truth, predicted, s=4, alpha=0.6)
        bottom.scatter(truth, predicted - truth, s=4, alpha=0.6)
    top.plot([lo, hi], [lo, hi], "r-", lw=1)
    bottom.axhline(0, color="r", lw=1)
    sigma = metrics["robust_sigma"]
    bottom.set_ylim(-5 * sigma if sigma == sigma and sigma > 0 else -1, 5 * sigma if sigma == sigma and sigma > 0 else 1)
    top.set(xlim=(lo, hi), ylim=(lo, hi), ylabel=f"predicted {label} {unit}".strip(), title=title)
    bottom.set(xlabel=f"true {label} {unit}".strip(), ylabel="residual")
    top.text(0.04, 0.96, f"$\\sigma$ = {sigma:.4g}\n$R^2$ = {metrics['r2']:.3f}\nN = {metrics['n']}", transform=top.transAxes, va="top", fontsize=9, bbox={"fc": "white", "alpha": 0.8})
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)
    return Path(out_png)


def plot_translations(panels: list[dict], out_png: str | Path, title: str = "") -> Path:
    """One row per example: the target spectrum (truth, grey) and its prediction from the other modality.

    Each panel dict has ``wavelength``, ``truth``, ``predicted``, ``mask``, ``label`` (a title).
    """
    import numpy as np

    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 1.9 * len(panels) + 0.4), dpi=110, squeeze=False)
    for ax, panel in zip(axes[:, 0], panels):
        good = ~np.asarray(panel["mask"], bool)
        ax.plot(panel["wavelength"][good], panel["truth"][good], color="0.55", lw=1, label="truth")
        ax.plot(panel["wavelength"], panel["predicted"], color="C3", lw=1, label="predicted")
        ax.set_title(panel["label"], fontsize=8, loc="left")
        ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("wavelength [A]")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)
    return Path(out_png)

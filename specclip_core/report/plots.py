"""Plots written by stages (PNG, matplotlib's Agg backend: no display needed).

Every axis, colour bars included, is labelled with a quantity and its unit in parentheses; titles
wrap to the figure's width; points beyond a panel's limits are drawn at its edge and counted.
"""

from __future__ import annotations

import csv
import textwrap
from pathlib import Path

import numpy as np

NO_UNIT = "unit not given"


def subplots(*args, **options):
    """``matplotlib.pyplot.subplots`` on the Agg backend; matplotlib is imported on the first plot,
    which keeps commands that draw none (predict, embed, search) from paying for it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **options)


def axis_label(quantity: str, unit: str = "") -> str:
    """``quantity (unit)``, saying so when the unit is not known."""
    return f"{quantity} ({unit or NO_UNIT})"


def _wrapped(text: str, width_inches: float, fontsize: float) -> str:
    """``text`` broken into lines that fit ``width_inches`` at ``fontsize`` points."""
    return "\n".join(textwrap.wrap(text, max(20, int(width_inches * 72 / (0.6 * fontsize))))) if text else ""


def _save(fig, out_png: str | Path) -> Path:
    fig.savefig(out_png)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return Path(out_png)


def plot_training_curves(metrics_csv: str | Path, out_png: str | Path, title: str = "") -> Path:
    """Train and validation loss per epoch from a loop's metrics.csv."""
    with open(metrics_csv) as handle:
        rows = list(csv.DictReader(handle))
    epochs = [int(r["epoch"]) for r in rows]
    fig, ax = subplots(figsize=(5, 3.5), dpi=120, layout="constrained")
    ax.plot(epochs, [float(r["train_loss"]) for r in rows], "o-", label="train")
    val = [float(r["val_loss"]) for r in rows]
    if any(v == v for v in val):
        ax.plot(epochs, val, "s-", label="validation")
    ax.set(xlabel=axis_label("epoch", "count"), ylabel=axis_label("loss", "arbitrary units"))
    ax.set_title(_wrapped(title, 4.6, 10), fontsize=10)
    ax.set_yscale("log")
    ax.legend()
    return _save(fig, out_png)


def _at_edge(ax, x: np.ndarray, y: np.ndarray, xlim: tuple[float, float], ylim: tuple[float, float]) -> int:
    """Draw the points outside ``xlim`` x ``ylim`` on the nearest edge (red crosses); return how many there are."""
    outside = (x < xlim[0]) | (x > xlim[1]) | (y < ylim[0]) | (y > ylim[1])
    count = int(outside.sum())
    if count:
        ax.scatter(np.clip(x[outside], *xlim), np.clip(y[outside], *ylim), marker="x", s=14, color="C3", clip_on=False, zorder=3, label=f"{count} beyond the axes, drawn at the edge")
        ax.legend(loc="lower right", fontsize=7)
    return count


def _density(fig, ax, x: np.ndarray, y: np.ndarray, extent: tuple[float, float, float, float], gridsize) -> None:
    """Points of ``x``, ``y`` inside ``extent``: hexagonal bins with a colour bar when crowded, else a scatter."""
    inside = (x >= extent[0]) & (x <= extent[1]) & (y >= extent[2]) & (y <= extent[3])
    if x.size > 2000:
        bins = ax.hexbin(x[inside], y[inside], gridsize=gridsize, extent=extent, bins="log", cmap="viridis", mincnt=1)
        fig.colorbar(bins, ax=ax, pad=0.01).set_label(axis_label("spectra per bin", "count"), fontsize=8)
    else:
        ax.scatter(x[inside], y[inside], s=4, alpha=0.6)


def _limits(values: np.ndarray) -> tuple[float, float]:
    """Axis limits holding every value, or the central 99% when a few outliers lie far beyond it; 5% margins."""
    if not values.size:
        return 0.0, 1.0
    lo, hi = np.percentile(values, [0.5, 99.5])
    span = hi - lo or 1.0
    if values.min() >= lo - 0.25 * span and values.max() <= hi + 0.25 * span:
        lo, hi = values.min(), values.max()
    pad = 0.05 * (hi - lo or 1.0)
    return float(lo - pad), float(hi + pad)


def plot_one_to_one(truth, predicted, out_png: str | Path, label: str, unit: str = "", title: str = "", name: str = "") -> Path:
    """Predicted against true values (density where crowded) with the residuals below; sigma and R^2
    in the corner. ``name`` is how the label is shown (default: the label itself)."""
    from specclip_core.heads.metrics import regression_metrics

    name = name or label
    truth, predicted = np.asarray(truth, float), np.asarray(predicted, float)
    keep = np.isfinite(truth) & np.isfinite(predicted)
    truth, predicted = truth[keep], predicted[keep]
    residual = predicted - truth
    metrics = regression_metrics(truth, predicted)
    sigma = metrics["robust_sigma"]
    fig, (top, bottom) = subplots(2, 1, figsize=(5.0, 6.0), dpi=120, sharex=True, gridspec_kw={"height_ratios": [3, 1]}, layout="constrained")
    lo, hi = _limits(np.concatenate([truth, predicted]))
    largest = float(np.abs(residual).max(initial=0.0))
    half = 5 * sigma if sigma == sigma and 8 * sigma < largest else 1.05 * largest or 1.0
    _density(fig, top, truth, predicted, (lo, hi, lo, hi), 70)
    _density(fig, bottom, truth, residual, (lo, hi, -half, half), (70, 25))
    top.plot([lo, hi], [lo, hi], "r-", lw=1)
    bottom.axhline(0, color="r", lw=1)
    top.set(xlim=(lo, hi), ylim=(lo, hi), ylabel=axis_label(f"predicted {name}", unit))
    bottom.set(ylim=(-half, half), xlabel=axis_label(f"true {name}", unit), ylabel=axis_label("predicted - true", unit))
    top.set_title(_wrapped(title, 4.2, 10), fontsize=10)
    _at_edge(top, truth, predicted, (lo, hi), (lo, hi))
    _at_edge(bottom, truth, residual, (lo, hi), (-half, half))
    text = f"$\\sigma$ = {sigma:.4g} {unit}\n$R^2$ = {metrics['r2']:.3f}\nN = {metrics['n']}"
    top.text(0.04, 0.96, text, transform=top.transAxes, va="top", fontsize=9, bbox={"fc": "white", "alpha": 0.8})
    return _save(fig, out_png)


def plot_translations(panels: list[dict], out_png: str | Path, title: str = "") -> Path:
    """One row per example: the target spectrum (truth, grey) and its prediction from the other modality.

    Each panel dict has ``wavelength`` (Angstrom), ``truth`` (None: no observed spectrum), ``predicted``
    (preprocessed, normalised flux), ``mask``, ``label`` (a title).
    """
    fig, axes = subplots(len(panels), 1, figsize=(8, 2.1 * len(panels) + 0.5), dpi=110, squeeze=False, layout="constrained")
    for ax, panel in zip(axes[:, 0], panels):
        if panel["truth"] is not None:
            good = ~np.asarray(panel["mask"], bool)
            ax.plot(panel["wavelength"][good], panel["truth"][good], color="0.55", lw=1, label="observed")
        ax.plot(panel["wavelength"], panel["predicted"], color="C3", lw=1, label="predicted")
        ax.set_title(_wrapped(panel["label"], 7.6, 8), fontsize=8, loc="left")
        ax.set_xlabel(axis_label("wavelength", "Å"), fontsize=7)
        ax.set_ylabel(axis_label("normalised flux", "dimensionless"), fontsize=7)
        ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7, loc="upper right")
    fig.suptitle(_wrapped(title, 7.6, 9), fontsize=9)
    return _save(fig, out_png)


def plot_sbc_ranks(ranks, n_samples: int, out_png: str | Path, name: str, ks_p: float, title: str = "", bins: int = 20) -> Path:
    """Histogram of SBC ranks with the band (mean +- 2 sd) a uniform histogram of as many ranks stays
    within about 95% of the time per bin; the K-S p-value in the corner."""
    ranks = np.asarray(ranks)
    counts, edges = np.histogram(ranks, bins=bins, range=(0, n_samples))
    expected = len(ranks) / bins
    spread = np.sqrt(expected * (1 - 1 / bins))
    fig, ax = subplots(figsize=(5.0, 3.6), dpi=120, layout="constrained")
    ax.axhspan(max(expected - 2 * spread, 0), expected + 2 * spread, color="0.85", label="uniform, $\\pm 2\\sigma$")
    ax.axhline(expected, color="0.5", lw=1)
    ax.stairs(counts, edges, fill=True, alpha=0.7, label="ranks")
    ax.set(xlabel=axis_label(f"rank of true {name} among {n_samples} posterior samples", "count of samples"), ylabel=axis_label("stars", "count"))
    ax.set_title(_wrapped(title, 4.2, 10), fontsize=10)
    ax.text(0.04, 0.96, f"K-S p = {ks_p:.3g}\nN = {len(ranks)}", transform=ax.transAxes, va="top", fontsize=9, bbox={"fc": "white", "alpha": 0.8})
    ax.legend(loc="upper right", fontsize=8)
    return _save(fig, out_png)


def plot_coverage(coverages: dict[str, dict[str, dict[str, float]]], out_png: str | Path, title: str = "", bands: dict[int, tuple[float, float]] | None = None) -> Path:
    """Empirical coverage of the 68% and 95% central intervals: ``coverages[head][label]`` holds
    ``coverage_68`` and ``coverage_95``; one group of bars per label, one bar per head, with the
    nominal level as a line and ``bands`` (level -> (low, high)) shaded as the accepted range."""
    heads = list(coverages)
    labels = list(dict.fromkeys(label for per_label in coverages.values() for label in per_label))
    fig, axes = subplots(1, 2, figsize=(9.0, 3.4), dpi=120, layout="constrained", sharey=False)
    width = 0.8 / max(len(heads), 1)
    for ax, level in zip(axes, (68, 95)):
        if bands and level in bands:
            ax.axhspan(*bands[level], color="0.88", label="accepted")
        ax.axhline(level / 100, color="0.4", lw=1, ls="--", label=f"nominal {level}%")
        for i, head in enumerate(heads):
            values = [coverages[head].get(label, {}).get(f"coverage_{level}", np.nan) for label in labels]
            ax.bar(np.arange(len(labels)) + (i - (len(heads) - 1) / 2) * width, values, width, label=head)
        ax.set_xticks(np.arange(len(labels)), labels, fontsize=8)
        ax.set_xlabel(axis_label("label", "one bar per head"), fontsize=8)
        low = min(level / 100 - 0.15, *(v.get(f"coverage_{level}", 1) for h in coverages.values() for v in h.values()))
        ax.set_ylim(max(low - 0.02, 0), min(level / 100 + 0.1, 1.0))
        ax.set_ylabel(axis_label(f"coverage of the {level}% interval", "fraction of test stars"), fontsize=8)
        ax.tick_params(labelsize=8)
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(_wrapped(title, 9.0, 9), fontsize=9)
    return _save(fig, out_png)

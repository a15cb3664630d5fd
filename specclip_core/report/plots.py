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

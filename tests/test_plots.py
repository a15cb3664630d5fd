"""Every plot labels every axis, colour bars included, with a quantity and its unit in parentheses."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest

from specclip_core.report import plots

UNIT = re.compile(r"\S.*\(.+\)")


@pytest.fixture
def figures(monkeypatch):
    """The figures the plot functions save, kept open for inspection."""
    kept = []

    def keep(fig, out_png):
        kept.append(fig)
        fig.savefig(out_png)
        return out_png

    monkeypatch.setattr(plots, "_save", keep)
    yield kept
    import matplotlib.pyplot as plt

    for fig in kept:
        plt.close(fig)


def _shows_values(ax, axis: str) -> bool:
    return any(t.get_visible() and t.get_text() for t in (ax.get_xticklabels() if axis == "x" else ax.get_yticklabels()))


def _unlabelled(fig) -> list[str]:
    """'axes i: x label ...' for every axis that shows values (a colour bar's too) and whose label is
    empty or has no unit in parentheses; an x axis shared with the panel below shows none."""
    missing = []
    for i, ax in enumerate(fig.axes):
        colorbar = ax.get_label() == "<colorbar>"
        for axis in ("x", "y"):
            text = ax.get_xlabel() if axis == "x" else ax.get_ylabel()
            if _shows_values(ax, axis) and not UNIT.fullmatch(text):
                missing.append(f"axes {i}{' (colour bar)' if colorbar else ''}: {axis} label {text!r}")
    return missing


@pytest.mark.parametrize("n", [300, 3000], ids=["scatter", "hexbin"])
def test_one_to_one_labels_every_axis_with_a_unit(figures, tmp_path, n):
    rng = np.random.default_rng(0)
    truth = rng.normal(5000, 500, n)
    predicted = truth + rng.normal(0, 80, n)
    predicted[:3] += 5000  # outliers: drawn at the edge, not dropped
    plots.plot_one_to_one(truth, predicted, tmp_path / "one.png", "teff", "K", "a title " * 12, name="Teff")
    (fig,) = figures
    assert not _unlabelled(fig)
    assert sum(_shows_values(ax, "x") for ax in fig.axes) == 1, "the panels share one x axis, the bottom one's"
    assert len(fig.axes) == (4 if n > 2000 else 2), "hexbins come with colour bars"
    assert "(K)" in fig.axes[1].get_ylabel() and "true Teff (K)" == fig.axes[1].get_xlabel()
    legends = [ax.get_legend().get_texts()[0].get_text() for ax in fig.axes if ax.get_legend()]
    assert any("beyond the axes" in text for text in legends), "points outside the residual axis are counted"
    assert "\n" in fig.axes[0].get_title(), "a long title wraps"


def test_one_to_one_says_when_the_unit_is_unknown(figures, tmp_path):
    plots.plot_one_to_one([0.1, 0.5, 0.9], [0.2, 0.5, 0.8], tmp_path / "one.png", "temp")
    assert figures[0].axes[0].get_ylabel() == "predicted temp (unit not given)"


def test_training_curves_and_translations_label_every_axis_with_a_unit(figures, tmp_path):
    metrics = tmp_path / "metrics.csv"
    with open(metrics, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", "train_loss", "val_loss"])
        writer.writerows([[1, 1.0, 1.1], [2, 0.5, 0.6]])
    plots.plot_training_curves(metrics, tmp_path / "loss.png", title="pretrain")
    wavelength = np.linspace(4000, 5000, 50)
    panel = {"wavelength": wavelength, "truth": np.ones(50), "predicted": np.ones(50), "mask": np.zeros(50, bool), "label": "star: a -> b"}
    plots.plot_translations([panel, panel], tmp_path / "translations.png", title="align")
    assert len(figures) == 2
    for fig in figures:
        assert not _unlabelled(fig)
    assert figures[1].axes[0].get_ylabel() == "normalised flux (dimensionless)"


def test_coverage_plot_labels_every_axis_with_a_unit(figures, tmp_path):
    coverages = {"npe maf": {"teff": {"coverage_68": 0.66, "coverage_95": 0.94}, "logg": {"coverage_68": 0.7, "coverage_95": 0.96}}, "mlp": {"teff": {"coverage_68": 0.69, "coverage_95": 0.93}}}
    plots.plot_coverage(coverages, tmp_path / "coverage.png", "coverage", {68: (0.63, 0.73), 95: (0.92, 0.97)})
    (fig,) = figures
    assert not _unlabelled(fig) and (tmp_path / "coverage.png").stat().st_size > 1000
    assert [len(bars) for bars in fig.axes[0].containers] == [2, 2], "one group of bars per head, one bar per label"

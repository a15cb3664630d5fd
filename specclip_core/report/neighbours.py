"""The query spectra with their nearest neighbours, as the paper's Figure 5 (PNG)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from specclip_core.report.plots import _save, _wrapped, axis_label, subplots

Spectrum = tuple[np.ndarray, np.ndarray, bool]
"""Wavelength, flux and whether the spectrum is simulated (labelled so in the plot)."""


@dataclass
class NeighbourPanel:
    """One query: its spectrum, the same star in the neighbours' modality when known, and its neighbours."""

    query_id: str
    query_modality: str
    modality: str
    spectrum: Spectrum | None
    counterpart: Spectrum | None = None
    neighbours: list[tuple[str, float, Spectrum]] = field(default_factory=list)


def plot_neighbours(panels: list[NeighbourPanel], out_png: str | Path, offset: float = 0.5) -> Path:
    """One row per query: its spectrum (left; the same star in the neighbours' modality too, when the
    search was cross-modal) and its neighbours' spectra stacked with ``offset`` (right, in-modal: on the query)."""
    import matplotlib

    cross = any(p.query_modality != p.modality for p in panels)
    columns = 2 if cross else 1
    fig, axes = subplots(len(panels), columns, figsize=(6 * columns, 3.2 * len(panels)), squeeze=False, constrained_layout=True)
    colours = matplotlib.colormaps["viridis"]
    for row, panel in enumerate(panels):
        left, right = axes[row][0], axes[row][-1]
        if panel.spectrum is not None:
            left.plot(*panel.spectrum[:2], color="black", lw=1.2, label=f"query {panel.query_id} ({panel.query_modality}{_simulated(panel.spectrum)})")
        if cross and panel.counterpart is not None:
            right.plot(*panel.counterpart[:2], color="black", lw=1.2, ls="--", label=f"query star in {panel.modality}{_simulated(panel.counterpart)}")
        for rank, (sid, cosine, (wavelength, flux, simulated)) in enumerate(panel.neighbours, start=1):
            right.plot(
                wavelength,
                flux + offset * rank,
                color=colours(rank / (len(panel.neighbours) + 1)),
                lw=0.9,
                label=f"#{rank} {sid} (cos {cosine:.3f}{', simulated' if simulated else ''})",
            )
        for axis, modality in zip(axes[row], [panel.query_modality, panel.modality][:columns], strict=True):
            axis.set_xlabel(axis_label(f"{modality} wavelength", "Å"))
            axis.set_ylabel(axis_label("flux + offset", "preprocessed"))
            axis.legend(fontsize=7, loc="best")
        title = f"query {panel.query_id}: {len(panel.neighbours)} nearest {panel.modality} neighbours by cosine" + (
            " (cross-modal)" if cross else ""
        )
        axes[row][0].set_title(_wrapped(title, 6 * columns, 10), fontsize=10)
    return _save(fig, out_png)


def _simulated(spectrum: Spectrum) -> str:
    return ", simulated" if spectrum[2] else ""

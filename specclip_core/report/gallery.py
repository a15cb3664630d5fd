"""The strangest stars of ``specclip anomalies``: each modality's spectrum with its reconstruction and
its translation from the star's other spectra (PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from specclip_core.components import get_modality
from specclip_core.report.plots import _save, _wrapped, axis_label, subplots

STYLES = {"recon": ("C0", "--", "reconstruction"), "cross": ("C3", "-", "translated from {source}")}


def gallery_panels(alignment: Any, best: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per star: its id, scores and per modality (wavelength, observed, mask, simulated, model curves)."""
    from specclip_core.anomaly.scores import model_spectra

    panels = []
    with torch.no_grad():
        for entry in best:
            tensors = {m: {k: torch.as_tensor(v) for k, v in arrays.items() if k != "present"} for m, arrays in entry["arrays"].items()}
            _, spectra = model_spectra(alignment.model, tensors)
            views = {}
            for m, arrays in entry["arrays"].items():
                curves = [(name.split("_", 1)[0], source, values[0].numpy()) for name, (source, target, values) in spectra.items() if target == m]
                views[m] = {
                    "wavelength": np.asarray(get_modality(m).wavelength),
                    "flux": arrays["flux"][0],
                    "mask": arrays["mask"][0],
                    "simulated": entry["simulated"].get(m, False),
                    "curves": curves,
                }
            panels.append({"id": entry["id"], "combined": entry["combined"], "views": views})
    return panels


def plot_gallery(panels: list[dict[str, Any]], out_png: str | Path, title: str = "") -> Path:
    """One row per star (strangest first), one column per modality."""
    modalities = sorted({m for panel in panels for m in panel["views"]})
    fig, axes = subplots(len(panels), len(modalities), figsize=(5.5 * len(modalities), 1.9 * len(panels) + 0.6), dpi=90, squeeze=False, layout="constrained")
    for row, panel in enumerate(panels):
        for column, modality in enumerate(modalities):
            ax = axes[row, column]
            view = panel["views"].get(modality)
            if view is None:
                ax.text(0.5, 0.5, f"no {modality} spectrum", ha="center", va="center", transform=ax.transAxes, fontsize=8)
                ax.set_axis_off()
                continue
            good = ~np.asarray(view["mask"], bool)
            observed = f"observed{' (SIMULATED)' if view['simulated'] else ''}"
            ax.plot(view["wavelength"][good], view["flux"][good], color="0.45", lw=0.8, label=observed)
            for kind, source, values in view["curves"]:
                colour, style, label = STYLES[kind]
                ax.plot(view["wavelength"], values, color=colour, ls=style, lw=0.8, label=label.format(source=source))
            ax.set_title(_wrapped(f"#{row + 1} {panel['id']} ({modality}): combined {panel['combined']:.1f}", 5.5, 8), fontsize=8, loc="left")
            ax.set_xlabel(axis_label("wavelength", "Å"), fontsize=7)
            ax.set_ylabel(axis_label("normalised flux", "dimensionless"), fontsize=7)
            ax.tick_params(labelsize=6)
            ax.legend(fontsize=6, loc="lower right")
    fig.suptitle(_wrapped(title, 5.5 * len(modalities), 9), fontsize=9)
    return _save(fig, out_png)

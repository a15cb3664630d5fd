"""Raw-spectrum scikit-learn baselines for the Gaia XP labels on the apogee-xp test split.

Inputs: the preprocessed XP spectrum (343 fluxes divided by the flux at 550 nm) and its two stats,
standardised on the training split. Models: ridge (penalty chosen by 5-fold CV on train), histogram
gradient boosting and 10-nearest-neighbours. Accuracy: robust sigma (Tukey biweight scale of the
residuals) and R^2 on the test split (u >= 0.90 by Gaia source id), as `specclip evaluate` computes it.

Usage (repository root): python bench/xp_baselines.py   # -> bench/results/xp_baselines.md/.json
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import RidgeCV
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from specclip_core.data.datasets import fetch_dataset
from specclip_core.data.splits import split_labels
from specclip_core.data.store import SpectralStore
from specclip_core.heads.metrics import regression_metrics

LABELS = ("teff", "logg", "fe_h", "alpha_m")
OUTPUT = Path("bench/results/xp_baselines")


def models():
    return {
        "ridge": RidgeCV(alphas=np.logspace(-3, 4, 15)),
        "gradient boosting": HistGradientBoostingRegressor(max_iter=300, random_state=0),
        "10-NN": KNeighborsRegressor(10),
    }


def main() -> None:
    store = SpectralStore.open(fetch_dataset("apogee-xp"))
    arrays = store.read("gaia_xp")
    inputs = np.concatenate([arrays["stats"], arrays["flux"]], axis=1)
    labels = store.labels(list(LABELS))
    split = split_labels(store.ids)
    results: dict[str, dict[str, dict[str, float]]] = {}
    started = time.time()
    for label in LABELS:
        y = labels[label]
        train = np.isfinite(y) & (split == "train")
        test = np.isfinite(y) & (split == "test")
        for name, model in models().items():
            pipeline = make_pipeline(StandardScaler(), model).fit(inputs[train], y[train])
            results.setdefault(name, {})[label] = regression_metrics(y[test], pipeline.predict(inputs[test]))
            print(f"{label} {name}: {results[name][label]['robust_sigma']:.4g}", flush=True)
    lines = [
        "# Raw-spectrum scikit-learn baselines, Gaia XP (real), apogee-xp test split",
        "",
        f"Written by `bench/xp_baselines.py` on {time.strftime('%Y-%m-%d %H:%M')} ({os.cpu_count()} CPU cores, {time.time() - started:.0f} s)."
        " Inputs: preprocessed XP spectrum (343 points / flux at 550 nm) + its 2 stats, standardised on train.",
        "",
        "Each cell: robust sigma (Tukey biweight scale of residuals) / R^2 (N test stars).",
        "",
        "| label | " + " | ".join(results) + " |",
        "|---|" + "---|" * len(results),
    ]
    for label in LABELS:
        cells = [f"{results[m][label]['robust_sigma']:.4g} / {results[m][label]['r2']:.3f} ({results[m][label]['n']})" for m in results]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    OUTPUT.with_suffix(".md").write_text("\n".join(lines) + "\n")
    OUTPUT.with_suffix(".json").write_text(json.dumps(results, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Stand-ins for missing simulator inputs, always flagged, never written over the measured labels.

- [Fe/H]: drawn at random from the measured [Fe/H] of the ``k`` stars nearest in (log10 Teff,
  logg), standardised. In the APOGEE x Gaia XP library every star hotter than ~7000 K lacks [Fe/H]
  (ASPCAP reports no abundances for them), so their nearest neighbours are the hottest F dwarfs
  with a measured [Fe/H]: a thin-disc-like draw, for stars whose LAMOST-resolution spectra hardly
  depend on [Fe/H].
- A_K: predicted from photometric colours and the spectroscopic Teff and logg by gradient boosting
  (scikit-learn ``HistGradientBoostingRegressor``, which also takes missing colours) trained on the
  stars whose A_K is measured; held-out residuals are reported.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from astropy.stats import biweight_location, biweight_scale
from threadpoolctl import threadpool_limits


def impute_by_neighbours(
    value: np.ndarray, features: np.ndarray, rng: np.random.Generator, k: int = 50
) -> tuple[np.ndarray, np.ndarray]:
    """Fill non-finite ``value`` with the value of a random one of the ``k`` nearest rows (in
    standardised ``features``) that have one. Returns (filled, imputed flag)."""
    from sklearn.neighbors import NearestNeighbors

    value = np.asarray(value, dtype=np.float64)
    features = np.asarray(features, dtype=np.float64)
    missing = ~np.isfinite(value)
    if not missing.any():
        return value.copy(), missing
    known = ~missing & np.isfinite(features).all(axis=1)
    if not known.any():
        raise ValueError("no row with a measured value to impute from")
    if not np.isfinite(features[missing]).all():
        raise ValueError("rows to impute need finite features")
    mean, std = features[known].mean(axis=0), features[known].std(axis=0)
    std = np.where(std > 0, std, 1.0)
    k = min(k, int(known.sum()))
    with threadpool_limits(1):
        search = NearestNeighbors(n_neighbors=k).fit((features[known] - mean) / std)
        _, neighbours = search.kneighbors((features[missing] - mean) / std)
    choice = neighbours[np.arange(len(neighbours)), rng.integers(0, k, size=len(neighbours))]
    filled = value.copy()
    filled[missing] = value[known][choice]
    return filled, missing


def impute_by_regression(
    value: np.ndarray, features: np.ndarray, missing: np.ndarray, seed: int = 0
) -> tuple[np.ndarray, dict[str, float]]:
    """Predict ``value`` where ``missing`` from ``features`` (NaN allowed) with gradient boosting
    trained on the other rows; returns the filled values and the held-out accuracy of the model
    (biweight location and scale of the residuals on a random 20% of the known rows)."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    value = np.asarray(value, dtype=np.float64)
    features = np.asarray(features, dtype=np.float64)
    missing = np.asarray(missing, dtype=bool)
    filled = value.copy()
    if not missing.any():
        return filled, {"n_imputed": 0}
    known = np.flatnonzero(~missing)
    if len(known) < 10:
        filled[missing] = np.median(value[known]) if len(known) else 0.0
        return filled, {"n_imputed": int(missing.sum()), "model": "median (too few known rows for a regression)"}
    rng = np.random.default_rng(seed)
    held_out = rng.random(len(known)) < 0.2

    def model():
        return HistGradientBoostingRegressor(max_iter=200, learning_rate=0.1, early_stopping=False, random_state=seed)

    with threadpool_limits(1, user_api="openmp"):  # small fits: OpenMP threads only spin on shared cores
        check = model().fit(features[known[~held_out]], value[known[~held_out]])
        residual = check.predict(features[known[held_out]]) - value[known[held_out]]
        final = model().fit(features[known], value[known])
        filled[missing] = final.predict(features[missing])
    accuracy = {
        "n_imputed": int(missing.sum()),
        "model": "HistGradientBoostingRegressor(max_iter=200)",
        "n_train": int(len(known)),
        "held_out": int(held_out.sum()),
        "held_out_bias": float(biweight_location(residual)) if len(residual) > 1 else float("nan"),
        "held_out_robust_sigma": float(biweight_scale(residual)) if len(residual) > 1 else float("nan"),
    }
    return filled, accuracy


def colour_features(labels: Mapping[str, np.ndarray], teff: np.ndarray, logg: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Colours available among Gaia G/BP/RP and 2MASS J/H/K magnitudes, plus log10 Teff and logg."""
    bands = {"g": "phot_g_mean_mag", "bp": "phot_bp_mean_mag", "rp": "phot_rp_mean_mag", "j": "j", "h": "h", "k": "k"}
    have = {b: np.asarray(labels[c], dtype=np.float64) for b, c in bands.items() if c in labels}
    pairs = [("bp", "rp"), ("g", "rp"), ("g", "k"), ("j", "k"), ("h", "k"), ("j", "h"), ("rp", "k")]
    columns, names = [np.log10(teff), logg], ["log10_teff", "logg"]
    for a, b in pairs:
        if a in have and b in have:
            columns.append(have[a] - have[b])
            names.append(f"{a}-{b}")
    return np.stack(columns, axis=1), names

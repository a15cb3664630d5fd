"""Accuracy of predicted labels: robust sigma (Tukey biweight scale of residuals), bias, R^2, clipped std."""

from __future__ import annotations

import numpy as np
from astropy.stats import biweight_location, biweight_scale, sigma_clipped_stats


def robust_sigma(residuals: np.ndarray) -> float:
    """Tukey biweight scale of the finite residuals (the paper's sigma)."""
    values = np.asarray(residuals, dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(biweight_scale(values)) if values.size > 1 else float("nan")


def regression_metrics(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """n, robust_sigma, bias (biweight location), r2, clipped_std (3-sigma clipped) over rows where both are finite."""
    from sklearn.metrics import r2_score  # on first use: scikit-learn takes seconds to import

    truth, predicted = np.asarray(truth, dtype=np.float64), np.asarray(predicted, dtype=np.float64)
    keep = np.isfinite(truth) & np.isfinite(predicted)
    truth, predicted = truth[keep], predicted[keep]
    if truth.size < 2:
        return {"n": int(truth.size), "robust_sigma": float("nan"), "bias": float("nan"), "r2": float("nan"), "clipped_std": float("nan")}
    residual = predicted - truth
    return {
        "n": int(truth.size),
        "robust_sigma": robust_sigma(residual),
        "bias": float(biweight_location(residual)),
        "r2": float(r2_score(truth, predicted)),
        "clipped_std": float(sigma_clipped_stats(residual, sigma=3.0)[2]),
    }

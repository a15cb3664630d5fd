"""Imputation of missing simulator inputs: nearest-neighbour draws for [Fe/H], regression for A_K."""

from __future__ import annotations

import numpy as np

from specclip_sim.impute import colour_features, impute_by_neighbours, impute_by_regression


def test_missing_values_are_drawn_from_the_nearest_measured_stars():
    rng = np.random.default_rng(0)
    teff = np.concatenate([rng.uniform(4000, 5000, 200), rng.uniform(6000, 7000, 200), [15000.0, 4500.0]])
    logg = np.full(len(teff), 4.0)
    value = np.where(teff < 5500, -1.0, 0.2)
    value[-2:] = np.nan
    filled, imputed = impute_by_neighbours(value, np.stack([np.log10(teff), logg], 1), np.random.default_rng(1), k=20)
    assert imputed.tolist() == [False] * 400 + [True, True]
    assert filled[-2] == 0.2 and filled[-1] == -1.0  # a hot star gets the hottest measured stars' values
    np.testing.assert_array_equal(filled[:400], value[:400])


def test_regression_fills_only_the_missing_rows_and_reports_held_out_accuracy():
    rng = np.random.default_rng(0)
    colour = rng.uniform(0, 2, 2000)
    value = 0.3 * colour + rng.normal(0, 0.01, 2000)
    missing = np.zeros(2000, bool)
    missing[:100] = True
    truth = value.copy()
    value[:100] = np.nan
    filled, accuracy = impute_by_regression(value, colour[:, None], missing)
    np.testing.assert_array_equal(filled[100:], value[100:])
    assert np.abs(filled[:100] - truth[:100]).max() < 0.05
    assert accuracy["n_imputed"] == 100 and accuracy["held_out_robust_sigma"] < 0.03


def test_colour_features_use_the_bands_present():
    labels = {"phot_bp_mean_mag": np.array([12.0]), "phot_rp_mean_mag": np.array([11.0]), "k": np.array([9.0])}
    features, names = colour_features(labels, np.array([5000.0]), np.array([3.0]))
    assert names == ["log10_teff", "logg", "bp-rp", "rp-k"]
    np.testing.assert_allclose(features[0], [np.log10(5000.0), 3.0, 1.0, 2.0])

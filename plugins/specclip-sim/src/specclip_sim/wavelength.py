"""Wavelength conversions: vacuum to air, and the Doppler factor of a radial velocity."""

from __future__ import annotations

import numpy as np
from astropy import constants
from astropy import units as u

C_KMS = constants.c.to_value(u.km / u.s)


def vacuum_to_air(wavelength: np.ndarray) -> np.ndarray:
    """Air wavelengths (A) of vacuum wavelengths (A): the refractive index of standard air given by
    Morton (2000, ApJS 130, 403), as used by VALD. Meant for wavelengths above 2000 A."""
    s2 = (1.0e4 / np.asarray(wavelength, dtype=np.float64)) ** 2
    n = 1.0 + 8.34254e-5 + 2.406147e-2 / (130.0 - s2) + 1.5998e-4 / (38.9 - s2)
    return wavelength / n


def doppler_factor(rv_kms: np.ndarray) -> np.ndarray:
    """lambda_observed / lambda_rest for radial velocities in km/s (relativistic, line of sight)."""
    beta = np.asarray(rv_kms, dtype=np.float64) / C_KMS
    return np.sqrt((1.0 + beta) / (1.0 - beta))

"""Interstellar extinction from a star's K-band extinction A_K.

The law is Gordon et al. (2023, ApJ 950, 86; "G23") with R_V = 3.1, from the ``dust_extinction``
package (pure Python, astropy-affiliated; valid 0.0912-32 micron, so one law covers both the optical
spectrum and the K band). A_lambda = A_K * k(lambda) / k(Ks), with k = A(lambda)/A(V) and Ks at the
2MASS isophotal wavelength 2.159 micron (Cohen et al. 2003).
"""

from __future__ import annotations

import numpy as np
from astropy import units as u
from dust_extinction.parameter_averages import G23

KS_WAVELENGTH = 2.159 * u.micron


def a_lambda_over_a_k(wavelength: np.ndarray, r_v: float = 3.1) -> np.ndarray:
    """A_lambda / A_K at ``wavelength`` (A)."""
    law = G23(Rv=r_v)
    return np.asarray(law(np.asarray(wavelength) * u.AA) / law(KS_WAVELENGTH), dtype=np.float64)


def transmission(a_k: np.ndarray, ratio: np.ndarray) -> np.ndarray:
    """Fraction of light transmitted (stars, pixels) for A_K (stars,) and A_lambda / A_K (pixels,)."""
    return 10.0 ** (-0.4 * np.asarray(a_k, dtype=np.float64)[:, None] * ratio[None, :])

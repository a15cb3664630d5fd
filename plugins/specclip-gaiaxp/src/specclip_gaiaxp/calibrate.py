"""Continuous XP spectra to sampled absolute spectra with ``gaiaxpy``, offline and quietly.

``gaiaxpy.calibrate`` works without network access for tables it is given (only lists of source
ids or ADQL queries go to the archive), but prints "Reading input file..." messages, shows a
progress bar on stdout that its public signature cannot turn off, and its pandas calls raise
deprecation warnings. We therefore call its internal twin ``_calibrate`` (the same code path, plus
``disable_info``) with stdout captured and warnings silenced; the tests check that the result
equals ``gaiaxpy.calibrate``'s exactly.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from typing import TYPE_CHECKING

import numpy as np

from specclip_gaiaxp.grid import SAMPLING_NM

if TYPE_CHECKING:
    import pandas as pd

CHUNK = 512
"""Rows per gaiaxpy call. Its working set is about 110 kB per row (covariances, per-source objects), so
calls are kept small; each call also rebuilds the design matrices (about 0.3 s), so not too small."""


@contextlib.contextmanager
def quiet():
    """Capture stdout, silence warnings (gaiaxpy's messages, bars and pandas deprecations) and keep
    matplotlib's settings (importing gaiaxpy turns on ``text.usetex``, which needs a LaTeX install)."""
    import matplotlib

    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), matplotlib.rc_context():
        warnings.simplefilter("ignore")
        yield


def sample(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Flux and flux error ``[N, 343]`` in W m-2 nm-1 at 336-1020 nm every 2 nm, for each row.

    ``frame`` holds gaiaxpy's input columns (``source_id``, ``{bp,rp}_n_parameters``,
    ``{bp,rp}_standard_deviation``, ``{bp,rp}_coefficients``, ``{bp,rp}_coefficient_errors``,
    ``{bp,rp}_coefficient_correlations``), arrays as numpy arrays, and at least one band per row.
    Samples no band covers come back NaN. Calls are made in chunks of :data:`CHUNK` rows.
    """
    with quiet():
        from gaiaxpy.calibrator.calibrator import _calibrate

    fluxes, errors = [], []
    for start in range(0, len(frame), CHUNK):
        part = frame.iloc[start : start + CHUNK].reset_index(drop=True)
        with quiet():
            spectra, positions = _calibrate(part, sampling=SAMPLING_NM, save_file=False, disable_info=True)
        if not np.allclose(positions, SAMPLING_NM) or list(spectra["source_id"]) != list(part["source_id"]):
            raise RuntimeError("gaiaxpy returned spectra on another grid or in another order than asked")
        fluxes += [_row(value) for value in spectra["flux"]]
        errors += [_row(value) for value in spectra["flux_error"]]
    return np.stack(fluxes), np.stack(errors)


def _row(value) -> np.ndarray:
    values = np.asarray(value, dtype=np.float64).reshape(-1)
    return values if values.size == SAMPLING_NM.size else np.full(SAMPLING_NM.size, np.nan)

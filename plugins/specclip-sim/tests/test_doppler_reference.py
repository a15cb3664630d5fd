"""The converted emulator reproduces thedoppler's own spectra (tests/data/doppler_reference.npz,
made by tools/make_reference.py with thedoppler 1.1.32 itself; see tests/data/PROVENANCE.md).

Needs the converted array file in the cache (``specclip data sim-emulator`` makes it); without it
the test skips. Tests never download.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from specclip_sim import source
from specclip_sim.emulator import Emulator

REFERENCE = Path(__file__).parent / "data" / "doppler_reference.npz"


@pytest.fixture(scope="module")
def emulator() -> Emulator:
    if not source.is_current(source.model_file()):
        pytest.skip(f"the converted emulator is not cached at {source.model_file()}; run `specclip data sim-emulator` to make it")
    return Emulator.load(download=False, progress=False)


def test_normalised_flux_matches_thedoppler_within_1e_4(emulator):
    reference = np.load(REFERENCE)
    flux, assignment = emulator.flux(reference["labels"])
    assert [emulator.models[i].name for i in assignment.model] == list(reference["model"])
    assert not assignment.clipped.any()
    ours = np.minimum(flux[:, reference["pixels"]], 1.0)  # thedoppler caps its model flux at 1
    np.testing.assert_allclose(emulator.models[0].flux.wavelength[reference["pixels"]], reference["wavelength"])
    assert np.abs(ours - reference["flux"]).max() < 1e-4


def test_continuum_matches_thedoppler(emulator):
    reference = np.load(REFERENCE)
    assignment = emulator.assign(reference["labels"])
    for row, index in enumerate(assignment.model):
        model = emulator.models[index]
        np.testing.assert_allclose(model.log_continuum.wavelength, reference["continuum_wavelength"])
        np.testing.assert_allclose(model.continuum(reference["labels"][row])[0], reference["continuum"][row], rtol=1e-5)

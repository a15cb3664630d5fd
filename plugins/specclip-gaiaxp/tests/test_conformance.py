"""The core's conformance suite on the gaia_xp modality and its three readers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from specclip_core.testing import ModalityConformance
from specclip_gaiaxp.library import ApogeeXPLibraryReader
from specclip_gaiaxp.modality import MT_TOKENIZER

DATA = Path(__file__).parent / "data"
SAMPLES = ["XP_CONTINUOUS_RAW.csv", "XP_CONTINUOUS_RAW_colour_eq_dr3int6.csv", "18Sco-XP-spectra.csv", "XP_SAMPLED_RAW_dr3int6.csv"]
LIBRARY_SLICE = DATA / "apogee_library_spectra-40rows.fits.gz"


class TestGaiaXPConformance(ModalityConformance):
    modality = "gaia_xp"
    tokenizers = {"mt": MT_TOKENIZER}

    @pytest.fixture(autouse=True)
    def _files(self, archive_formats):
        type(self).reader_files = [LIBRARY_SLICE, *(DATA / name for name in SAMPLES), archive_formats["ecsv"], archive_formats["fits"]]

    def raw_spectra(self):
        raw = ApogeeXPLibraryReader().read(LIBRARY_SLICE)
        return raw.subset(np.flatnonzero(raw.flux[:, 107] > 0))


def test_alias_resolves():
    from specclip_core.api import get_modality

    assert get_modality("xp").name == "gaia_xp"


def test_sampling_leaves_matplotlib_settings_alone():
    import matplotlib

    from specclip_gaiaxp.calibrate import quiet

    with quiet():
        import gaiaxpy.calibrator.calibrator  # noqa: F401
        import gaiaxpy.plotter.plotter  # noqa: F401  (sets text.usetex on import)
    assert matplotlib.rcParams["text.usetex"] is False

"""The core's conformance suite, run on desi, its two readers and its writer with the real files."""

import pytest

from specclip_core.api import Spectra
from specclip_core.testing import ModalityConformance
from specclip_desi.readers import DesiCoaddReader

COADDS = ("coadd-5-169-thru20210419.fits", "coadd-sv3-dark-26065.fits")


class TestDesiConformance(ModalityConformance):
    modality = "desi"

    @pytest.fixture(autouse=True)
    def _real_files(self, desi_files):
        type(self).reader_files = list(desi_files.values())
        self.found = desi_files

    def raw_spectra(self) -> Spectra:
        """The three targets of the two coadd files."""
        return Spectra.concatenate([DesiCoaddReader().read(self.found[name]) for name in COADDS])

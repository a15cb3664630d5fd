"""The core's conformance suite, run on lamost_lrs, lamost_lrs_full and their two readers with the copied real files."""

from pathlib import Path

from specclip_core.api import Spectra
from specclip_core.testing import ModalityConformance
from specclip_lamost.readers import read_lamost

FILES = sorted((Path(__file__).parent / "data").glob("spec-*.fits.gz"))


class TestLamostConformance(ModalityConformance):
    modality = "lamost_lrs"
    reader_files = FILES

    def raw_spectra(self) -> Spectra:
        """The copied spectra on the most common native grid (one DR8 and two DR10 files)."""
        groups: dict[bytes, list[Spectra]] = {}
        for path in FILES:
            spectra = read_lamost(path)
            groups.setdefault(spectra.wavelength.tobytes(), []).append(spectra)
        return Spectra.concatenate(max(groups.values(), key=len))


class TestLamostFullConformance(TestLamostConformance):
    modality = "lamost_lrs_full"

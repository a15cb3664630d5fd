"""The core's conformance suite on the photometry modality and its table reader."""

from __future__ import annotations

from pathlib import Path

from specclip_core.testing import ModalityConformance
from specclip_phot.reader import PhotometryTableReader

TABLE = Path(__file__).parent / "data" / "photometry-40rows.csv"


class TestPhotometryConformance(ModalityConformance):
    modality = "photometry"
    reader_files = [TABLE]
    encoders = ["mlp_autoencoder"]  # six bands: one vector, no tokens for a masked transformer

    def raw_spectra(self):
        return PhotometryTableReader().read(TABLE)


def test_alias_resolves():
    from specclip_core.api import get_modality

    assert get_modality("phot").name == "photometry"

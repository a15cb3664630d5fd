"""The instrument description a modality gives simulators: the calibration file is optional."""

import dataclasses

import numpy as np
import pytest

from specclip_core.api import Instrument


def test_an_instrument_may_name_its_calibration_file(tmp_path):
    grid = np.linspace(4000.0, 5000.0, 11)
    assert Instrument(2000.0, grid).calibration is None
    described = Instrument(2000.0, grid, snr_band=(4200.0, 4800.0), calibration=str(tmp_path / "mine.json"))
    assert described.calibration.endswith("mine.json")
    with pytest.raises(dataclasses.FrozenInstanceError):
        described.calibration = None

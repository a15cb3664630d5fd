"""Head inputs made of the preprocessed spectra: stats + flux, and stats + flux + sqrt(ivar)."""

import numpy as np
import pytest

from specclip_core.heads.inputs import spectra_inputs


def arrays():
    return {
        "stats": np.array([[1.0, 0.1]]),
        "flux": np.array([[0.9, 1.0, 1.1]]),
        "ivar": np.array([[4.0, 0.0, np.nan]]),
        "mask": np.array([[False, True, True]]),
    }


def test_spectra_are_stats_then_flux():
    np.testing.assert_array_equal(spectra_inputs(arrays()), np.array([[1.0, 0.1, 0.9, 1.0, 1.1]], dtype=np.float32))


def test_spectra_ivar_adds_the_inverse_error_of_each_pixel_and_zero_where_unusable():
    values = spectra_inputs(arrays(), "spectra_ivar")
    assert values.dtype == np.float32 and values.shape == (1, 8)
    np.testing.assert_array_equal(values[0, 5:], [2.0, 0.0, 0.0])


def test_an_unknown_kind_is_named():
    with pytest.raises(ValueError, match="'spectra_err'.*spectra_ivar"):
        spectra_inputs(arrays(), "spectra_err")

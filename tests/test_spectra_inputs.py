"""Head inputs made of the preprocessed spectra (stats + flux) and the pixel errors a head may read
besides them (1 / sqrt(ivar) or sqrt(ivar), 0 where unusable); old head files read as they meant."""

import json

import numpy as np
import pytest

from specclip_core.heads.inputs import pixel_errors, spectra_inputs, with_errors
from specclip_core.rundir import HeadInputs


def arrays():
    return {
        "stats": np.array([[1.0, 0.1]]),
        "flux": np.array([[0.9, 1.0, 1.1, 1.2]]),
        "ivar": np.array([[4.0, 0.0, np.nan, 16.0]]),
        "mask": np.array([[False, True, True, True]]),
    }


def test_spectra_are_stats_then_flux():
    np.testing.assert_array_equal(spectra_inputs(arrays()), np.array([[1.0, 0.1, 0.9, 1.0, 1.1, 1.2]], dtype=np.float32))


def test_pixel_errors_are_sigma_or_its_inverse_and_zero_where_unusable():
    np.testing.assert_array_equal(pixel_errors(arrays(), "sigma"), np.array([[0.5, 0.0, 0.0, 0.0]], dtype=np.float32))
    np.testing.assert_array_equal(pixel_errors(arrays(), "inverse_sigma"), np.array([[2.0, 0.0, 0.0, 0.0]], dtype=np.float32))  # masked, though ivar 16
    values = with_errors(spectra_inputs(arrays()), arrays(), "inverse_sigma")
    assert values.dtype == np.float32 and values.shape == (1, 10)


def test_an_unknown_kind_of_pixel_errors_is_named():
    with pytest.raises(ValueError, match="'ivar'.*'sigma', 'inverse_sigma'"):
        pixel_errors(arrays(), "ivar")


@pytest.mark.parametrize(
    "written, meant",
    [({"input": "spectra_ivar"}, ("spectra", "inverse_sigma")), ({"input": "embedding", "errors_input": True}, ("embedding", "sigma")), ({"input": "spectra", "errors_input": False}, ("spectra", "none"))],
)
def test_head_files_written_before_the_one_setting_read_as_they_meant(tmp_path, written, meant):
    (tmp_path / "inputs.json").write_text(json.dumps({"modality": "toy", "encoder_stage": None, "head": "mlp", **written}))
    read = HeadInputs.read(tmp_path)
    assert (read.input, read.errors_input) == meant

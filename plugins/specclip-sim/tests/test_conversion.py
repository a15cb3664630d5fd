"""Conversion of thedoppler-style pickles (in a tiny fake wheel) and the wheel's fetch rules."""

from __future__ import annotations

import os
import pickle
import zipfile

import numpy as np
import pytest

from specclip_core.api import sha256_file
from specclip_sim import convert, source
from specclip_sim.cannon import read_models

TERMS = [[(0, 1)], [(1, 1)], [(2, 1)], [(0, 2.0)], [(1, 1), (0, 1)]]


def _state(pixels: int, rng: np.random.Generator, log: bool = False) -> dict:
    grid = np.array(np.meshgrid([4000, 5000, 6000], [1.0, 3.0, 5.0], [-2.0, 0.0]), dtype=np.float32).reshape(3, -1).T
    state = {
        "vectorizer": ("PolynomialVectorizer", {"label_names": ("TEFF", "LOGG", "FEH"), "terms": TERMS}),
        "theta": rng.normal(size=(pixels, 1 + len(TERMS))),
        "dispersion": np.linspace(3000.0, 18000.0, pixels),
        "s2": rng.uniform(0, 1e-3, pixels),
        "training_set_labels": np.asfortranarray(grid),  # the real files hold Fortran-ordered arrays
        "wavevac": False,
        "regularization": np.int64(0),
        "metadata": {"model_class": "CannonModel", "version": "0.2.93"},
    }
    if log:
        state["logflux"] = True
    return state


def make_wheel(path, rng=None):
    rng = rng or np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as archive:
        for model in convert.MODELS:
            state = _state(50, rng)
            state["continuum"] = _state(10, rng, log=True)
            archive.writestr(convert.MEMBER.format(model), pickle.dumps(state, protocol=3))
    return path


def test_pickles_become_arrays_with_thecannons_label_scaling(tmp_path):
    wheel = make_wheel(tmp_path / "fake.whl")
    convert.convert(wheel, tmp_path / "out.safetensors", "0" * 64)
    meta, models = read_models(tmp_path / "out.safetensors")
    assert meta["format_version"] == str(convert.FORMAT_VERSION) and meta["wheel_sha256"] == "0" * 64
    with zipfile.ZipFile(wheel) as archive:
        state = pickle.loads(archive.read(convert.MEMBER.format("coolstars")))
    model = next(m for m in models if m.name == "coolstars")
    np.testing.assert_array_equal(model.training_labels, state["training_set_labels"])
    np.testing.assert_array_equal(model.flux.exponents, [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [2, 0, 0], [1, 1, 0]])
    labels = np.array([[4500.0, 2.0, -1.0]])
    fiducials = np.percentile(state["training_set_labels"], 50, axis=0)
    scales = np.ptp(np.percentile(state["training_set_labels"], [2.5, 97.5], axis=0), axis=0)
    s = ((labels - fiducials) / scales)[0]
    vector = np.array([1, s[0], s[1], s[2], s[0] ** 2, s[1] * s[0]])
    np.testing.assert_allclose(model.flux(labels)[0], state["theta"] @ vector, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(model.continuum(labels)[0], 10 ** (state["continuum"]["theta"] @ vector), rtol=1e-5)
    np.testing.assert_allclose(model.scatter, np.sqrt(state["s2"]), rtol=1e-6)


class _Sneaky:
    def __reduce__(self):
        return (os.getcwd, ())


def test_pickles_with_anything_but_numpy_arrays_are_refused(tmp_path):
    wheel = tmp_path / "bad.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for model in convert.MODELS:
            archive.writestr(convert.MEMBER.format(model), pickle.dumps({"theta": _Sneaky()}, protocol=3))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        convert.convert(wheel, tmp_path / "out.safetensors", "0" * 64)


def test_the_first_use_converts_in_a_subprocess_and_later_uses_read_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECCLIP_CACHE", str(tmp_path))
    (tmp_path / "downloads").mkdir()
    wheel = make_wheel(tmp_path / "downloads" / convert.WHEEL)
    monkeypatch.setattr(source, "WHEEL_SHA256", sha256_file(wheel))
    path = source.ensure_model_file(download=False, progress=False)
    assert path == source.model_file() and source.is_current(path)
    stamp = path.stat().st_mtime_ns
    wheel.unlink()  # no longer needed
    assert source.ensure_model_file(download=False, progress=False).stat().st_mtime_ns == stamp


def test_offline_without_the_wheel_says_what_to_download_and_where(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECCLIP_CACHE", str(tmp_path))
    with pytest.raises(source.EmulatorDataError) as error:
        source.ensure_model_file(download=False, progress=False)
    message = str(error.value)
    assert "pip download --no-deps thedoppler==1.1.32" in message
    assert str(tmp_path / "downloads") in message and convert.WHEEL_SHA256 in message


def test_a_wheel_with_the_wrong_checksum_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECCLIP_CACHE", str(tmp_path))
    (tmp_path / "downloads").mkdir()
    make_wheel(tmp_path / "downloads" / convert.WHEEL)
    with pytest.raises(source.EmulatorDataError, match="sha256"):
        source.ensure_model_file(download=False, progress=False)

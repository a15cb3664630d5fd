"""The XP readers on the copied real files: units, ids, labels, formats, and agreement with gaiaxpy."""

from __future__ import annotations

import gzip
import socket
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from specclip_core.api import ReaderError
from specclip_gaiaxp.calibrate import quiet
from specclip_gaiaxp.continuous import GaiaXPContinuousReader
from specclip_gaiaxp.grid import FLUX_UNIT, SAMPLING_NM, WAVELENGTH
from specclip_gaiaxp.library import LABELS, ApogeeXPLibraryReader
from specclip_gaiaxp.sampled import GaiaXPSampledReader

DATA = Path(__file__).parent / "data"
LIBRARY_SLICE = DATA / "apogee_library_spectra-40rows.fits.gz"
CONTINUOUS = ["XP_CONTINUOUS_RAW.csv", "XP_CONTINUOUS_RAW_colour_eq_dr3int6.csv"]
READERS = [ApogeeXPLibraryReader(), GaiaXPContinuousReader(), GaiaXPSampledReader()]


def gaiaxpy_flux(path: Path, **options) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Flux, error (W m-2 nm-1) and ids straight from ``gaiaxpy.calibrate``."""
    with quiet():
        from gaiaxpy import calibrate

        frame, sampling = calibrate(str(path), sampling=SAMPLING_NM, save_file=False, **options)
    assert np.allclose(sampling, SAMPLING_NM)
    return np.stack(frame["flux"]), np.stack(frame["flux_error"]), [str(s) for s in frame["source_id"]]


# -- which reader takes which file --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "reader"),
    [
        ("apogee_library_spectra-40rows.fits.gz", "apogee_xp_library"),
        ("XP_CONTINUOUS_RAW.csv", "gaiaxp_continuous"),
        ("XP_CONTINUOUS_RAW_colour_eq_dr3int6.csv", "gaiaxp_continuous"),
        ("18Sco-XP-spectra.csv", "gaiaxp_continuous"),
        ("XP_SAMPLED_RAW_dr3int6.csv", "gaiaxp_sampled"),
    ],
)
def test_exactly_one_reader_sniffs_each_file(name, reader):
    assert [r.name for r in READERS if r.sniff(DATA / name)] == [reader]


# -- the APOGEE x XP library -----------------------------------------------------------------------------
def test_library_ids_labels_and_units():
    spectra = ApogeeXPLibraryReader().read(LIBRARY_SLICE)
    with fits.open(LIBRARY_SLICE) as hdul:
        table = hdul[1].data
    # 40 rows, one star (46519413555554816) listed twice with identical rows
    assert len(spectra) == 39 and len(table) == 40
    assert np.array_equal(spectra.wavelength, np.arange(3360.0, 10201.0, 20.0))
    assert list(spectra.meta) == [*LABELS, "source_id", "apogee_id"]
    first = {str(sid): row for row, sid in reversed(list(enumerate(table["gaiaedr3_source_id"])))}
    rows = np.array([first[sid] for sid in spectra.ids])
    assert list(spectra.ids) == list(spectra.meta["source_id"]) == [str(s) for s in table["gaiaedr3_source_id"][rows]]
    assert list(spectra.meta["apogee_id"]) == [str(a).strip() for a in table["apogee_id"][rows]]
    for label, column in LABELS.items():
        np.testing.assert_array_equal(spectra.meta[label], table[column][rows].astype(np.float64))
    assert np.isnan(spectra.meta["fe_h"]).sum() == 3 and np.isnan(spectra.meta["j"]).sum() == 1
    physical = table["flux"][rows].astype(np.float64) * table["medflux"][rows, None]
    np.testing.assert_allclose(spectra.flux, physical / FLUX_UNIT, rtol=1e-6)
    np.testing.assert_allclose(spectra.ivar, (table["flux_error"][rows] * table["medflux"][rows, None] / FLUX_UNIT) ** -2.0, rtol=1e-5)
    assert not spectra.mask.any()


def test_library_fluxes_are_absolute():
    """flux * medflux is in W m-2 nm-1: at 550 nm it gives, for stars with G_BP - G_RP < 1.2, a
    magnitude (zero point 3.63e-11 W m-2 nm-1, Vega at 550 nm) within 0.3 mag of Gaia's G."""
    spectra = ApogeeXPLibraryReader().read(LIBRARY_SLICE)
    colour = spectra.meta["phot_bp_mean_mag"] - spectra.meta["phot_rp_mean_mag"]
    blue = colour < 1.2
    magnitude = -2.5 * np.log10(spectra.flux[blue, 107] * FLUX_UNIT / 3.63e-11)
    assert blue.sum() >= 10 and np.all(np.abs(magnitude - spectra.meta["phot_g_mean_mag"][blue]) < 0.3)


def test_library_rows_of_one_star_that_disagree_are_an_error(tmp_path):
    with fits.open(LIBRARY_SLICE) as hdul:
        data = hdul[1].data.copy()
        data["teff"][-1] += 100.0  # the last row repeats the star of an earlier row
        path = tmp_path / "apogee_library_spectra.fits"
        fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU(data, header=hdul[1].header)]).writeto(path)
    with pytest.raises(ReaderError, match="46519413555554816 appears 2 times with different data") as caught:
        ApogeeXPLibraryReader().read(path)
    assert str(path) in str(caught.value)


def test_library_with_another_sampling_is_refused(tmp_path):
    table = Table.read(LIBRARY_SLICE)
    table["flux"] = table["flux"][:, :300]
    table.write(tmp_path / "apogee_library_spectra.fits")
    with pytest.raises(ReaderError, match="343 samples per row"):
        ApogeeXPLibraryReader().read(tmp_path / "apogee_library_spectra.fits")


def test_corrupt_gzip_is_rejected_naming_the_file(tmp_path):
    data = bytearray(LIBRARY_SLICE.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    path = tmp_path / LIBRARY_SLICE.name
    path.write_bytes(bytes(data))
    for reader in READERS:
        with pytest.raises(ReaderError, match="damaged gzip") as caught:
            reader.read(path)
        assert str(path) in str(caught.value)


# -- archive continuous spectra -> gaiaxpy ---------------------------------------------------------------
@pytest.mark.parametrize("name", CONTINUOUS)
def test_continuous_reader_reproduces_gaiaxpy(name):
    spectra = GaiaXPContinuousReader().read(DATA / name)
    flux, error, ids = gaiaxpy_flux(DATA / name)
    assert list(spectra.ids) == ids
    np.testing.assert_allclose(spectra.flux * FLUX_UNIT, flux, rtol=1e-6, atol=0)
    np.testing.assert_allclose(spectra.ivar, (error / FLUX_UNIT) ** -2.0, rtol=1e-5)


def test_csv_ecsv_and_fits_give_the_same_spectra(archive_formats):
    reader = GaiaXPContinuousReader()
    spectra = {kind: reader.read(path) for kind, path in archive_formats.items()}
    for kind in ("ecsv", "fits"):
        assert reader.sniff(archive_formats[kind])
        assert list(spectra[kind].ids) == list(spectra["csv"].ids)
        np.testing.assert_array_equal(spectra[kind].flux, spectra["csv"].flux)
        np.testing.assert_array_equal(spectra[kind].ivar, spectra["csv"].ivar)


def test_standard_deviation_columns_are_not_needed(tmp_path):
    """Files like 18Sco-XP-spectra.csv lack {bp,rp}_standard_deviation; gaiaxpy's flux and error do not depend on it."""
    table = Table.read(DATA / "XP_CONTINUOUS_RAW.csv", format="ascii.csv")
    table.remove_columns(["bp_standard_deviation", "rp_standard_deviation"])
    table.write(tmp_path / "reduced.csv", format="ascii.csv")
    full, reduced = (GaiaXPContinuousReader().read(p) for p in (DATA / "XP_CONTINUOUS_RAW.csv", tmp_path / "reduced.csv"))
    np.testing.assert_array_equal(reduced.flux, full.flux)
    np.testing.assert_allclose(reduced.ivar, full.ivar, rtol=1e-6)


def test_18sco_is_a_continuous_spectrum():
    spectra = GaiaXPContinuousReader().read(DATA / "18Sco-XP-spectra.csv")
    assert list(spectra.ids) == ["4345775217221821312"] and not spectra.mask.any()
    # a G=5.3 solar twin: flux peaks near 500 nm at a few 1e-13 W m-2 nm-1
    peak = WAVELENGTH[np.argmax(spectra.flux[0])]
    assert 4500 < peak < 5500 and 1e-13 < spectra.flux[0].max() * FLUX_UNIT < 1e-12


def test_a_source_without_either_band_gives_an_empty_spectrum(tmp_path):
    table = Table.read(DATA / "XP_CONTINUOUS_RAW.csv", format="ascii.csv")
    for name in ("coefficients", "coefficient_errors", "coefficient_correlations"):
        table[f"bp_{name}"][1] = table[f"rp_{name}"][1] = ""
    table.write(tmp_path / "one_empty.csv", format="ascii.csv")
    spectra = GaiaXPContinuousReader().read(tmp_path / "one_empty.csv")
    assert spectra.mask[1].all() and not spectra.mask[0].any()


def test_inconsistent_coefficients_are_rejected(tmp_path):
    text = (DATA / "XP_CONTINUOUS_RAW.csv").read_text().replace("(56947.03696840172, ", "(", 1)
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(ReaderError, match=r"54 coefficients, 55 errors.*bad.csv|bad.csv.*54 coefficients, 55 errors"):
        GaiaXPContinuousReader().read(tmp_path / "bad.csv")


def test_coefficients_gaiaxpy_cannot_use_are_rejected(tmp_path):
    table = Table.read(DATA / "XP_CONTINUOUS_RAW.csv", format="ascii.csv")
    for row in range(len(table)):  # 54 BP coefficients everywhere: consistent, but not DR3's 55 bases
        for column, keep in (("bp_coefficients", 54), ("bp_coefficient_errors", 54), ("bp_coefficient_correlations", 54 * 53 // 2)):
            table[column][row] = "(" + ",".join(table[column][row].strip("()").split(",")[:keep]) + ")"
    table["bp_n_parameters"] = 54
    table.write(tmp_path / "short_basis.csv", format="ascii.csv")
    with pytest.raises(ReaderError, match="gaiaxpy cannot sample") as caught:
        GaiaXPContinuousReader().read(tmp_path / "short_basis.csv")
    assert "short_basis.csv" in str(caught.value)


def test_continuous_reading_is_quiet_and_offline(monkeypatch, capfd):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spectra = GaiaXPContinuousReader().read(DATA / "XP_CONTINUOUS_RAW.csv")
    assert len(spectra) == 2
    out, err = capfd.readouterr()
    assert out == "" and err == ""


# -- sampled spectra ------------------------------------------------------------------------------------
def test_archive_sampled_spectra_match_the_continuous_ones():
    """XP_SAMPLED_RAW_dr3int6.csv holds the two stars of XP_CONTINUOUS_RAW.csv (ids 6 and 4 in that
    internal release) sampled by an earlier calibration: the same 343-sample grid, flux within 0.1%."""
    sampled = GaiaXPSampledReader().read(DATA / "XP_SAMPLED_RAW_dr3int6.csv")
    continuous = GaiaXPContinuousReader().read(DATA / "XP_CONTINUOUS_RAW.csv")
    assert list(sampled.ids) == ["6", "4"]
    peak = np.abs(continuous.flux).max(axis=1, keepdims=True)
    assert np.max(np.abs(sampled.flux - continuous.flux) / peak) < 1e-3
    shifted = np.abs(sampled.flux[:, 1:] - continuous.flux[:, :-1]) / peak
    assert np.max(shifted) > 10 * np.max(np.abs(sampled.flux - continuous.flux) / peak), "a one-sample shift would show"


@pytest.mark.parametrize("kind", ["csv", "ecsv", "fits"])
def test_gaiaxpy_output_on_another_sampling_is_resampled(tmp_path, kind):
    with quiet():
        from gaiaxpy import calibrate

        fine = np.arange(337.0, 1010.0, 1.0)
        calibrate(str(DATA / "XP_CONTINUOUS_RAW.csv"), sampling=fine, output_path=str(tmp_path), output_file="fine", output_format=kind)
    path = tmp_path / f"fine.{kind}"
    reader = GaiaXPSampledReader()
    assert [r.name for r in READERS if r.sniff(path)] == ["gaiaxp_sampled"]
    spectra = reader.read(path)
    exact = GaiaXPContinuousReader().read(DATA / "XP_CONTINUOUS_RAW.csv")
    outside = (WAVELENGTH < 3370) | (WAVELENGTH > 10090)
    assert np.array_equal(spectra.mask, np.broadcast_to(outside, spectra.mask.shape))
    peak = np.abs(exact.flux).max(axis=1, keepdims=True)
    assert np.max(np.abs(spectra.flux - exact.flux)[:, ~outside] / peak) < 2e-3


def test_sampled_spectra_of_unknown_sampling_are_refused(tmp_path):
    table = Table.read(DATA / "XP_SAMPLED_RAW_dr3int6.csv", format="ascii.csv")
    for column in ("flux", "flux_error"):
        table[column] = [text.rsplit(",", 3)[0] + ")" for text in table[column]]
    table.write(tmp_path / "short.csv", format="ascii.csv")
    with pytest.raises(ReaderError, match="340 samples per spectrum and no sampling given"):
        GaiaXPSampledReader().read(tmp_path / "short.csv")


def test_internally_calibrated_spectra_are_refused(tmp_path):
    path = tmp_path / "converted.csv"
    path.write_text('source_id,xp,flux,flux_error\n6,BP,"(1.0, 2.0, 3.0)","(0.1, 0.1, 0.1)"\n')
    with pytest.raises(ReaderError, match="pseudo-wavelengths"):
        GaiaXPSampledReader().read(path)


def test_gzipped_csv_is_read(tmp_path):
    path = tmp_path / "XP_SAMPLED_RAW_dr3int6.csv.gz"
    path.write_bytes(gzip.compress((DATA / "XP_SAMPLED_RAW_dr3int6.csv").read_bytes()))
    assert GaiaXPSampledReader().sniff(path)
    plain = GaiaXPSampledReader().read(DATA / "XP_SAMPLED_RAW_dr3int6.csv")
    np.testing.assert_array_equal(GaiaXPSampledReader().read(path).flux, plain.flux)


def test_an_empty_value_inside_an_array_cell_is_an_error_naming_line_and_column(tmp_path):
    from specclip_gaiaxp.tables import read_table

    from specclip_core.api import ReaderError

    path = tmp_path / "table.csv"
    path.write_text('source_id,flux\n1,"(1.0, 2.0, 3.0)"\n2,"(1.0, , 3.0)"\n')
    with pytest.raises(ReaderError, match=r"line 3, column 'flux'.*''"):
        read_table(path, ["flux"])
    path.write_text('source_id,flux\n1,"(1.0, 2.0, 3.0)"\n2,"(4.0, 5.0, 6.0)"\n')
    assert [list(row) for row in read_table(path, ["flux"])["flux"]] == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]


def test_csv_lines_are_split_as_the_csv_module_splits_them():
    import csv
    import random

    from specclip_gaiaxp.tables import _split

    rng = random.Random(5)
    alphabet = ["a", "1", ",", ";", '"', " ", "[", "]", "\r", "."]
    archive = (DATA / "XP_SAMPLED_RAW_dr3int6.csv").read_text().splitlines(keepends=True)
    lines = archive + ['"x""y",2\n', 'a"b",c\n', '"a"b,c\n', '"",""\n', ",\n", '"a,b"\r\n', 'a,"b\r"\n']
    lines += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))) + rng.choice(["\n", "\r\n", ""]) for _ in range(20000)]
    for line in lines:
        for delimiter in (",", ";"):
            try:
                expected = next(csv.reader([line], delimiter=delimiter, quotechar='"'))
            except csv.Error as error:
                expected = type(error)
            try:
                got = _split(line, delimiter)
            except csv.Error as error:
                got = type(error)
            assert got == expected, (line, delimiter)

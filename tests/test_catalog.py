"""A catalogue says, per column, its unit, its head and whether that head saw real or SIMULATED spectra,
and keeps the digits the head's scatter supports."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from specclip_core.catalog import LabelColumn, catalog_format, write_catalog
from specclip_core.errors import SpecCLIPError

COLUMNS = {
    "id": np.array(["a", "b"]),
    "teff": np.array([5123.456789012345, 4000.5]),
    "logg": np.array([2.456789012345678, 4.1]),
    "rv": np.array([-12.345678, 3.0]),
}
LABELS = {
    "teff": LabelColumn("heads_sim", True, "survey_b", "K", 52.0),
    "logg": LabelColumn("heads_sim", True, "survey_b", "dex", 0.08),
    "rv": LabelColumn("heads_sim", True, "survey_b", "km/s", None),
}
HEADER = {"MODEL": "specclip run toy, heads heads_sim", "TRAINED": "heads_sim on SIMULATED survey_b spectra", "SIMTRAIN": True}


def test_precision_follows_the_heads_scatter():
    assert LABELS["teff"].decimals == 0 and LABELS["logg"].decimals == 3 and LABELS["rv"].decimals is None
    assert LabelColumn("s", False, "m", "K", 150.0).rounded(np.array([5123.4]))[0] == 5120.0


def test_csv_catalogue_states_units_training_data_and_precision(tmp_path):
    path = tmp_path / "catalog.csv"
    write_catalog(path, COLUMNS, HEADER, LABELS)
    text = path.read_text()
    comments = [line for line in text.splitlines() if line.startswith("#")]
    assert comments[0] == "# MODEL: specclip run toy, heads heads_sim"
    assert "# TRAINED: heads_sim on SIMULATED survey_b spectra" in comments
    assert any(line.startswith("# COLUMN teff: K; heads stage heads_sim, trained on SIMULATED survey_b spectra; rounded to 1") for line in comments)
    assert any(line.startswith("# COLUMN logg: dex;") and "rounded to 0.001" in line for line in comments)
    assert any(line.startswith("# COLUMN rv: km/s;") and "6 significant digits" in line for line in comments)
    rows = [line for line in text.splitlines() if not line.startswith("#")]
    assert rows[0] == "id,teff,logg,rv" and rows[1] == "a,5123,2.457,-12.3457"


def test_fits_catalogue_states_units_training_data_and_precision(tmp_path):
    path = tmp_path / "catalog.fits"
    write_catalog(path, COLUMNS, HEADER, LABELS)
    with fits.open(path) as hdus:
        header, data = hdus[1].header, hdus[1].data
    units = {header[f"TTYPE{i}"]: header.get(f"TUNIT{i}") for i in range(1, header["TFIELDS"] + 1)}
    assert units == {"id": None, "teff": "K", "logg": "dex", "rv": "km/s"}
    assert header["TRAINED"] == "heads_sim on SIMULATED survey_b spectra" and header["SIMTRAIN"] is True
    assert "SIMULATED" in header.comments["TTYPE2"]
    assert data["teff"][0] == 5123.0 and data["logg"][0] == 2.457 and header["TDISP3"].endswith(".3")


def test_an_unknown_suffix_is_refused():
    with pytest.raises(SpecCLIPError, match=r"catalog.xyz: a catalogue must end in \.csv, \.ecsv, \.fit, \.fits"):
        catalog_format("catalog.xyz")


def test_rejected_inputs_keep_a_row_with_their_reason(tmp_path):
    from specclip_core.catalog import with_rejected_rows

    columns = {"id": np.array(["a", "b"]), "source": np.array(["a.fits", "b.fits"]), "teff": np.array([5000.0, 6000.0]), "flag_knn": np.array([False, True]), "flags": np.array(["", "knn"])}
    rows = with_rejected_rows(columns, [("", "cut.fits", "truncated gzip"), ("x7", "many.csv", "no usable pixel")])
    assert list(rows["id"]) == ["a", "b", "", "x7"] and list(rows["source"]) == ["a.fits", "b.fits", "cut.fits", "many.csv"]
    assert list(rows["reason"]) == ["", "", "truncated gzip", "no usable pixel"]
    assert np.isnan(rows["teff"][2:]).all() and list(rows["flag_knn"]) == [False, True, False, False] and list(rows["flags"]) == ["", "knn", "", ""]
    path = tmp_path / "catalog.fits"
    write_catalog(path, rows, {**HEADER, "MODELSHA": "ab" * 32}, LABELS, {"reason": "why a row has no values"})
    with fits.open(path) as hdus:
        header, data = hdus[1].header, hdus[1].data
    assert header["MODELSHA"] == "ab" * 32 and list(data["reason"]) == ["", "", "truncated gzip", "no usable pixel"]
    assert header.comments[f"TTYPE{data.columns.names.index('reason') + 1}"] == "why a row has no values"
    assert header[f"TUNIT{data.columns.names.index('teff') + 1}"] == "K"
    assert with_rejected_rows(columns, [])["reason"].tolist() == ["", ""]


def test_csv_rows_are_written_as_astropy_writes_them(tmp_path):
    from astropy.table import Table

    columns = {
        "id": np.array(["a", 'say "b"', "c,d", ""]),
        "teff": np.array([5123.4, np.nan, -1.0, 1e5]),
        "chi2": np.array([16.820798873901367, np.nan, np.inf, 1e-30]),
        "small": np.array([0.1, 2.5, 3.0, -0.0], dtype=np.float32),
        "n": np.array([1, -2, 3, 4]),
        "flag": np.array([True, False, True, False]),
        "reason": np.array(["", "bad file, truncated", "", "x"]),
    }
    labels = {"teff": LabelColumn("heads", False, "toy", "K", 52.0)}
    write_catalog(tmp_path / "ours.csv", columns, HEADER, labels)
    table = Table({name: labels[name].rounded(values) if name in labels else values for name, values in columns.items()})
    table["teff"].format = labels["teff"].format
    table.write(tmp_path / "astropy.csv", format="ascii.csv")
    ours = [line for line in (tmp_path / "ours.csv").read_text().splitlines() if not line.startswith("#")]
    assert ours == (tmp_path / "astropy.csv").read_text().splitlines()
    back = Table.read(tmp_path / "ours.csv", format="ascii.csv", comment="#")
    assert list(back["id"].filled("")) == list(columns["id"]) and list(back["reason"].filled("")) == list(columns["reason"])


def test_posterior_samples_file_keeps_every_unit_without_a_warning(tmp_path, recwarn):
    from specclip_core.predict import write_samples

    rows = {"id": np.array(["a", "b"]), "source": np.array(["f1", "f2"])}
    drawn = {"teff": np.ones((2, 5)), "logg": np.zeros((2, 5))}
    path = write_samples(tmp_path / "cat.fits", rows, drawn, LABELS, {"MODEL": "m", "CREATED": "now"})
    header = fits.getheader(path, 1)
    assert [header["TUNIT3"], header["TUNIT4"]] == ["K", "dex"] and header["NSAMPLES"] == 5 and "CREATED" not in header
    assert not [w for w in recwarn if "dex" in str(w.message)]

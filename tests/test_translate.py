"""``specclip translate``: the predicted spectrum on the target grid (FITS with ids and model card) and its plot."""

import json
import shutil

import numpy as np
import pytest
import torch
from astropy.io import fits

from specclip_core.saved_alignment import load_alignment
from specclip_core.errors import SpecCLIPError
from specclip_core.testing import cli_main
from specclip_core.translate import translate_files


def test_translate_a_store_writes_the_decoders_prediction_with_ids_and_card(aligned_run, tmp_path):
    run, store = aligned_run
    out = tmp_path / "broad.fits"
    assert cli_main(["translate", str(run), str(store.path), "--from", "toy", "--to", "toy_broad", "-o", str(out), "--quiet"]) == 0
    with fits.open(out) as hdus:
        assert [h.name for h in hdus] == ["PRIMARY", "WAVELENGTH", "FLUX", "SPECTRA", "MODELCARD"]
        header, flux = hdus[0].header, hdus["FLUX"].data
        wavelength, ids = hdus["WAVELENGTH"].data, hdus["SPECTRA"].data["ID"]
        card = json.loads(hdus["MODELCARD"].data["JSON"][0])
    assert (header["SOURCE"], header["TARGET"], header["PREDICTD"], header["SIMTRAIN"]) == ("toy", "toy_broad", True, False)
    assert flux.shape == (len(store), 24) and np.allclose(wavelength, store.wavelength("toy_broad"))
    assert list(ids) == list(store.ids)
    assert card["stage"] == "align" and card["source"] == "toy" and card["held_out_pairs"] > 0
    alignment = load_alignment(run, target="toy_broad")
    rows = store.read("toy", slice(0, 5))
    with torch.no_grad():
        expected = alignment.predictor("toy", "toy_broad")(alignment.model.embed("toy", {k: torch.as_tensor(v) for k, v in rows.items()}).shared)
    assert np.allclose(flux[:5], expected.numpy(), atol=1e-5)
    assert (tmp_path / "broad.png").stat().st_size > 0


def test_translate_files_finds_the_modality_and_plots_against_observed_spectra(aligned_run, tmp_path):
    from specclip_toy import make_raw, write_file

    run, store = aligned_run
    raw = make_raw(3, seed=0)
    files = [str(write_file(tmp_path / f"{sid}.toy.csv", raw, row)) for row, sid in enumerate(raw.ids)]
    (tmp_path / "broken.toy.csv").write_text("not a spectrum\n")
    report = translate_files(
        run, files + [str(tmp_path / "broken.toy.csv")], "toy_broad", tmp_path / "t.fits", observed=[str(store.path)], plot=tmp_path / "t.png", progress=False
    )
    assert report.source == "toy" and report.n_rows == 3 and report.n_observed == 3
    assert [where.endswith("broken.toy.csv") for where, _ in report.rejected] == [True]
    with fits.open(tmp_path / "t.fits") as hdus:
        assert list(hdus["SPECTRA"].data["ID"]) == list(raw.ids)
        assert hdus["SPECTRA"].data["SOURCE"][0].endswith(".toy.csv")


def test_translate_errors_name_what_is_missing(aligned_run, tmp_path):
    run, store = aligned_run
    with pytest.raises(SpecCLIPError, match="FITS"):
        translate_files(run, [str(store.path)], "toy_broad", tmp_path / "t.csv", source="toy", progress=False)
    with pytest.raises(SpecCLIPError, match="toy_narrow -> toy_broad cross-modal decoder"):
        translate_files(run, [str(store.path)], "toy_broad", tmp_path / "t.fits", source="toy_narrow", progress=False)
    bare = tmp_path / "bare"
    shutil.copytree(run, bare, ignore=shutil.ignore_patterns("align"))
    with pytest.raises(SpecCLIPError, match="no finished align stage"):
        translate_files(bare, [str(store.path)], "toy_broad", tmp_path / "t.fits", source="toy", progress=False)

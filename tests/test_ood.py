"""Out-of-distribution flags: k-NN distance percentiles against the training set, reconstruction
residuals of an autoencoder's decoder, label-range flags; thresholds from the training set."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from specclip_core.anomaly.scores import chi_square
from specclip_core.errors import SpecCLIPError
from specclip_core.heads.ood import OODReference, OODSettings, recon_chi2, reference_rows


def _reference(n=3000, seed=0, chi2=True, **settings):
    rng = np.random.default_rng(seed)
    train = rng.normal(size=(n, 12)).astype(np.float32)
    labels = {"teff": rng.uniform(4000, 6000, n), "logg": np.where(rng.uniform(size=n) < 0.2, np.nan, rng.uniform(1, 5, n))}
    return OODReference.fit(train, labels, rng.chisquare(3, n) / 3 if chi2 else None, OODSettings(**settings)), rng


def test_knn_percentiles_are_uniform_in_distribution_and_flag_shifted_inputs():
    reference, rng = _reference(k=5)
    inside, outside = rng.normal(size=(2000, 12)), rng.normal(size=(200, 12)) + 4.0
    predicted = {"teff": np.full(2000, 5000.0)}
    columns = reference.columns(inside, predicted, np.ones(2000))
    assert abs(np.median(columns["ood_knn_pct"]) - 50) < 5
    assert 0.003 < columns["flag_knn"].mean() < 0.03  # the 99th training percentile
    shifted = reference.columns(outside, {"teff": np.full(200, 5000.0)})
    assert shifted["flag_knn"].all() and (shifted["ood_knn_pct"] == 100).all()
    assert "ood_recon_chi2" not in shifted and set(shifted["flags"]) == {"knn"}


def test_range_and_reconstruction_flags_and_the_flags_string():
    reference, rng = _reference()
    assert reference.label_range["logg"][0] >= 1 and reference.label_range["logg"][1] <= 5  # NaN ignored
    x = rng.normal(size=(4, 12))
    predicted = {"teff": np.array([5000.0, 3000.0, 5000.0, 7000.0]), "logg": np.array([2.0, 2.0, 6.0, 2.0])}
    chi2 = np.array([1.0, 1.0, 50.0, 1.0])
    columns = reference.columns(x, predicted, chi2)
    assert columns["flag_range_teff"].tolist() == [False, True, False, True]
    assert columns["flag_range_logg"].tolist() == [False, False, True, False]
    assert columns["flag_recon"].tolist() == [False, False, True, False]
    flags = [set(filter(None, f.split(","))) - {"knn"} for f in columns["flags"]]
    assert flags == [set(), {"range_teff"}, {"recon", "range_logg"}, {"range_teff"}]


def test_range_probability_grows_towards_the_range_edges_with_the_error():
    reference, rng = _reference()
    low, high = reference.label_range["teff"]
    x = rng.normal(size=(4, 12))
    predicted = {"teff": np.array([(low + high) / 2, high - 50, high + 50, high - 50]), "teff_err": np.array([50.0, 50.0, 50.0, 500.0])}
    p = reference.columns(x, predicted)["ood_range_p"]
    assert p[0] < 1e-6 and abs(p[1] - 0.159) < 0.01 and abs(p[2] - 0.841) < 0.01 and 0.4 < p[3] < 0.5
    assert "ood_range_p" not in reference.columns(x, {"teff": predicted["teff"]})  # a point head saved without its validation sigma
    point = OODReference(reference.settings, reference.arrays, reference.label_range, {"teff": 50.0})
    np.testing.assert_allclose(point.columns(x, {"teff": predicted["teff"]})["ood_range_p"][:3], p[:3])


def test_reference_round_trips_and_subsamples(tmp_path):
    reference, rng = _reference(n=500, reference=100, components=4)
    assert len(reference_rows(500, reference.settings, 0)) == 100
    reference.save(tmp_path)
    again = OODReference.load(tmp_path)
    x = rng.normal(size=(50, 12))
    np.testing.assert_allclose(again.knn_distance(x), reference.knn_distance(x), rtol=1e-5)
    assert again.label_range == reference.label_range and again.label_sigma == reference.label_sigma and again.threshold("train_recon_chi2") == reference.threshold("train_recon_chi2")
    assert OODReference.load(tmp_path / "nothing") is None
    (tmp_path / "ood.safetensors").unlink()
    with pytest.raises(SpecCLIPError, match="ood.safetensors: missing"):
        OODReference.load(tmp_path)


def test_too_few_training_inputs_is_a_clear_error():
    with pytest.raises(SpecCLIPError, match="3 training inputs, need more than k=10"):
        OODReference.fit(np.zeros((3, 4)), {}, None, OODSettings())


def test_reconstruction_chi2_of_an_autoencoder_is_the_anomaly_scores_chi2():
    from specclip_toy import ToyModality, make_raw

    from specclip_core.nn.modality_encoder import ModalityEncoder

    spectra = ToyModality().preprocess(make_raw(16, 3))
    arrays = {"flux": spectra.flux, "ivar": spectra.ivar, "mask": spectra.mask, "stats": spectra.stats}
    torch.manual_seed(0)
    encoder = ModalityEncoder("toy", {"name": "vector"}, {"name": "mlp_autoencoder", "size": "small"})
    tokens = encoder.tokenize({"flux": torch.as_tensor(spectra.flux), "stats": torch.as_tensor(spectra.stats)})
    np.testing.assert_allclose(encoder.tokenizer.flux_of(tokens, torch.as_tensor(spectra.stats)).numpy(), spectra.flux, rtol=1e-4, atol=1e-4)
    rebuilt = encoder.reconstruct(spectra.flux, spectra.stats)
    expected = chi_square(torch.as_tensor(spectra.flux), torch.as_tensor(rebuilt), torch.as_tensor(spectra.ivar), torch.as_tensor(spectra.mask))
    np.testing.assert_allclose(recon_chi2(rebuilt, arrays), expected, rtol=1e-6)
    assert (recon_chi2(rebuilt, arrays) > 0).all()
    embedded, again = encoder.embed_and_reconstruct(spectra.flux, spectra.stats, batch_size=5)
    np.testing.assert_allclose(embedded, encoder.embed(spectra.flux, spectra.stats), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(again, rebuilt, rtol=1e-5, atol=1e-6)
    transformer = ModalityEncoder("toy", None, {"name": "masked_transformer", "size": "small"})
    assert not transformer.can_reconstruct and transformer.reconstruct(spectra.flux, spectra.stats) is None
    assert transformer.embed_and_reconstruct(spectra.flux, spectra.stats)[1] is None and recon_chi2(None, arrays) is None


def test_predict_writes_the_reconstruction_residual_of_an_autoencoder_run(tmp_path):
    from astropy.table import Table
    from specclip_toy import make_raw, make_store, write_file

    from specclip_core.predict import predict_catalog
    from specclip_core.runner import run_spec
    from specclip_core.spec import validate_spec

    store = make_store(tmp_path / "toy.zarr", n=300, seed=4)
    train = {"epochs": 3, "batch_size": 64, "device": "cpu"}
    spec = {
        "name": "toy-ood",
        "seed": 1,
        "run_dir": str(tmp_path / "run"),
        "data": {"store": str(store.path)},
        "stages": {
            "pretrain": {"kind": "pretrain", "modality": "toy", "tokenizer": {"name": "vector"}, "encoder": {"name": "mlp_autoencoder", "size": "small"}, "objectives": [{"name": "reconstruction"}], "train": train},
            "heads": {"kind": "heads", "needs": ["pretrain"], "modality": "toy", "labels": ["temp"], "head": {"name": "mlp", "hidden": [16]}, "train": train, "ood": {"reference": 50, "k": 5}},
        },
    }
    run_spec(validate_spec(spec), progress=False, log=lambda *_: None)
    inputs = tmp_path / "in"
    inputs.mkdir()
    raw = make_raw(3, 5)
    for row in range(3):
        write_file(inputs / f"star{row}.toy.csv", raw, row)
    predict_catalog(tmp_path / "run", [str(inputs)], tmp_path / "catalog.ecsv", progress=False)
    table = Table.read(tmp_path / "catalog.ecsv")
    assert {"ood_knn_pct", "flag_knn", "ood_recon_chi2", "flag_recon", "flag_range_temp", "flags", "reason"} <= set(table.colnames)
    assert np.all(np.asarray(table["ood_recon_chi2"]) > 0) and len(table) == 3
    with pytest.raises(SpecCLIPError, match="point estimates only"):
        predict_catalog(tmp_path / "run", [str(inputs)], tmp_path / "samples.ecsv", progress=False, samples=10)
    saved = OODReference.load(tmp_path / "run" / "heads" / "head")
    assert len(saved.arrays["reference"]) == 50 and len(saved.arrays["train_recon_chi2"]) == 50

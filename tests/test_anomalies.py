"""``specclip anomalies``: scores, percentiles against the training set, the combined rank and the gallery."""

import csv

import numpy as np
import pytest
from scipy.stats import combine_pvalues

from specclip_core.anomaly.find import find_anomalies
from specclip_core.anomaly.rank import Reference, combined_score
from specclip_core.data.splits import split_rows
from specclip_core.data.store import SpectralStore
from specclip_core.errors import SpecCLIPError
from specclip_core.interfaces import Spectra
from specclip_core.testing import cli_main
from specclip_toy import MODALITIES


def read_table(path):
    with open(path) as handle:
        return list(csv.DictReader(line for line in handle if not line.startswith("#")))


def test_reference_tails_percentiles_and_fisher_by_hand():
    reference = Reference({"a": np.arange(100.0), "b": np.array([0.0, 1.0, np.nan, 2.0])})
    assert reference.names == ["a", "b"]
    assert reference.percentile("a", np.array([-1.0, 50.0, 1000.0, np.nan])) == pytest.approx([0.0, 50.0, 100.0, np.nan], nan_ok=True)
    assert reference.tail("a", np.array([99.0, 1000.0])) == pytest.approx([2 / 101, 1 / 101])
    scores = {"a": np.array([99.0, 10.0]), "b": np.array([5.0, np.nan])}
    combined, _, most = combined_score(reference, scores)
    expected = -np.log10(combine_pvalues([2 / 101, 1 / 4], method="fisher").pvalue)
    assert combined[0] == pytest.approx(expected)
    assert combined[1] == pytest.approx(-np.log10(91 / 101))  # one score: its own tail
    assert list(most) == [0, 0]


def swapped_store(store, path, n_swapped):
    """The test rows of the toy pair, with toy_broad exchanged between ``n_swapped`` pairs of stars of very
    different temperature (a cross-match error); label ``swapped`` marks them."""
    rows = split_rows(store.ids, "test")
    temp = store.labels(["temp"], rows)["temp"]
    order = np.argsort(temp)
    cold, hot = order[:n_swapped], order[::-1][:n_swapped]
    broad = np.arange(len(rows))
    broad[cold], broad[hot] = hot, cold
    spectra = {"toy": store.spectra("toy", rows, labels=False)}
    b = store.spectra("toy_broad", rows[broad], labels=False)
    spectra["toy_broad"] = Spectra(b.wavelength, b.flux, b.ivar, b.mask, spectra["toy"].ids, stats=b.stats)
    swapped = (broad != np.arange(len(rows))).astype(int)
    views = {m: MODALITIES[m]() for m in spectra}
    with SpectralStore.build(path, views, {"swapped": "int"}) as out:
        out.append(spectra["toy"].ids, spectra, {"swapped": swapped})
    return SpectralStore.open(path), swapped


def test_swapped_pairs_rank_first_and_the_table_says_what_each_score_is(aligned_run, tmp_path):
    run, store = aligned_run
    injected, swapped = swapped_store(store, tmp_path / "injected.zarr", 3)
    out = tmp_path / "ranked.csv"
    assert cli_main(["anomalies", str(run), str(injected.path), "-o", str(out), "--top", "4", "--quiet"]) == 0
    table = read_table(out)
    header = [line for line in open(out) if line.startswith("#")]
    assert any(line.startswith("# REFERENCE:") for line in header) and any(line.startswith("# TRAINED:") for line in header)
    assert len(table) == len(injected)
    for name in ("recon_toy", "recon_toy_broad", "cross_toy_to_toy_broad", "cross_toy_broad_to_toy", "disagree_toy_toy_broad", "density_toy", "density_toy_broad"):
        assert name in table[0] and f"pct_{name}" in table[0]
    combined = [float(r["combined"]) for r in table]
    assert combined == sorted(combined, reverse=True)
    assert all(0 <= float(r["pct_disagree_toy_toy_broad"]) <= 100 for r in table)
    by_id = dict(zip(injected.ids, swapped, strict=True))
    ranks = [int(r["rank"]) for r in table if by_id[r["id"]]]
    assert max(ranks) <= 12, f"the 6 swapped stars ranked {sorted(ranks)} of {len(table)}"
    assert (tmp_path / "ranked.png").stat().st_size > 0


def test_files_of_one_modality_get_in_modal_scores_only(aligned_run, tmp_path):
    from specclip_toy import make_raw, write_file

    run, _ = aligned_run
    raw = make_raw(4, seed=3)
    files = [str(write_file(tmp_path / f"{sid}.toy.csv", raw, row)) for row, sid in enumerate(raw.ids)]
    report = find_anomalies(run, files, tmp_path / "files.csv", reference_rows=50, gallery=tmp_path / "g.png", top=2, progress=False)
    table = read_table(tmp_path / "files.csv")
    assert report.n_rows == 4 and report.reference_rows == 50
    assert all(r["cross_toy_to_toy_broad"] == "nan" and np.isfinite(float(r["recon_toy"])) and np.isfinite(float(r["density_toy"])) for r in table)
    assert {r["row"] for r in table} == {"-1"} and all(r["modalities"] == "toy" for r in table)


def test_anomalies_errors(aligned_run, tmp_path):
    run, store = aligned_run
    with pytest.raises(SpecCLIPError, match="must end in"):
        find_anomalies(run, [str(store.path)], tmp_path / "ranked.txt", progress=False)
    (tmp_path / "x.dat").write_text("nothing")
    with pytest.raises(SpecCLIPError, match="files must hold one of the modalities"):
        find_anomalies(run, [str(tmp_path / "x.dat")], tmp_path / "ranked.csv", progress=False)

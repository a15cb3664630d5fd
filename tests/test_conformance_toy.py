"""The conformance suite run on the toy plugin: proves the suite itself works on a good plugin."""

from pathlib import Path

import pytest

from specclip_core.testing import ModalityConformance


class TestToyConformance(ModalityConformance):
    modality = "toy"

    @pytest.fixture(autouse=True)
    def _files(self, tmp_path_factory):
        from specclip_toy import make_raw, write_file

        directory = tmp_path_factory.mktemp("toyfiles")
        type(self).reader_files = [write_file(directory / "star-1.toy.csv", make_raw(1, 5))]

    def raw_spectra(self):
        from specclip_toy import make_raw

        return make_raw(6, 3)


def test_ingest_skips_and_reports_bad_files(tmp_path):
    from specclip_core.data.ingest import ingest_files
    from specclip_core.data.store import SpectralStore
    from specclip_toy import make_raw, write_file

    raw = make_raw(5, 11)
    for row in range(5):
        write_file(tmp_path / f"s{row}.toy.csv", raw, row)
    (tmp_path / "broken.toy.csv").write_text("# specclip-toy v1\n1000,1,1\n")
    (tmp_path / "foreign.toy.csv").write_bytes(b"\x89PNG\r\n")
    labels = {"id": raw.ids, "temp": raw.meta["temp"]}
    report = ingest_files([tmp_path], "toy_alias", tmp_path / "out.zarr", labels=labels, id_column="id", progress=False)
    assert report.n_files == 7 and report.n_spectra_written == 5
    skipped = dict(report.skipped_files)
    assert set(Path(p).name for p in skipped) == {"broken.toy.csv", "foreign.toy.csv"}
    assert "truncated" in skipped[str(tmp_path / "broken.toy.csv")]
    store = SpectralStore.open(tmp_path / "out.zarr")
    assert len(store) == 5 and "temp" in store.label_columns
    assert store.meta["ingest_report"]["n_spectra_written"] == 5


def test_label_join_keeps_header_values_where_the_table_has_no_row():
    from specclip_core.data.ingest import join_labels
    from specclip_toy import make_raw

    raw = make_raw(3, 1)
    raw.meta["subclass"] = __import__("numpy").array(["G2", "K0", "A1"])
    table = {"id": raw.ids[:2], "subclass": ["G5", "K1"], "temp": [0.1, 0.2], "mass": [1.0, 2.0]}
    joined, match = join_labels(raw, table, "id")
    assert list(joined.meta["subclass"]) == ["G5", "K1", "A1"]
    assert joined.meta["temp"].tolist() == [0.1, 0.2, raw.meta["temp"][2]]
    assert joined.meta["mass"][:2].tolist() == [1.0, 2.0] and joined.meta["mass"][2] != joined.meta["mass"][2]
    assert (match.n_rows, match.n_rows_matched, match.n_spectra_without_row, match.n_ids_without_spectrum) == (2, 2, 1, 0)
    both = "the label table, else the files"
    assert match.columns == {"subclass": both, "temp": both, "mass": "the label table"}


def test_label_join_reports_unmatched_and_duplicated_ids_and_reads_float_ids():
    import numpy as np

    from specclip_core.data.ingest import join_labels
    from specclip_toy import make_raw

    raw = make_raw(3, 1)
    raw.ids = np.array(["10", "11", "12"])
    table = {"id": np.array([10.0, 11.0, 11.0, 99.0]), "mass": np.array([1.0, 2.0, 3.0, 4.0])}
    joined, match = join_labels(raw, table, "id")
    assert joined.meta["mass"][0] == 1.0 and np.isnan(joined.meta["mass"][1:]).all(), "a duplicated id gives no labels"
    assert (match.n_rows, match.n_rows_matched, match.n_spectra_without_row, match.n_ids_without_spectrum) == (4, 1, 2, 1)
    assert match.duplicated_ids == ["11"]


def test_cli_label_table_gives_nan_for_missing_numbers(tmp_path):
    import numpy as np

    from specclip_core.data.ingest import read_label_table

    path = tmp_path / "labels.csv"
    path.write_text("id,group,kind\na,1,x\nb,,y\nc,3\n")
    table = read_label_table(str(path))
    assert np.isnan(table["group"][1]) and table["group"][2] == 3 and table["kind"][2] == ""


def test_ingest_stage_feeds_later_stages(tmp_path):
    from specclip_core.runner import run_spec
    from specclip_core.spec import validate_spec
    from specclip_toy import make_raw, write_file

    raw = make_raw(60, 21)
    (tmp_path / "files").mkdir()
    for row in range(60):
        write_file(tmp_path / "files" / f"s{row}.toy.csv", raw, row)
    (tmp_path / "labels.csv").write_text("id,temp\n" + "".join(f"s{row},{t}\n" for row, t in enumerate(raw.meta["temp"])))
    spec = validate_spec(
        {
            "name": "ingest-then-heads",
            "run_dir": str(tmp_path / "run"),
            "data": {"stage": "ingest"},
            "stages": {
                "ingest": {"kind": "ingest", "modality": "toy", "paths": [str(tmp_path / "files")], "labels": str(tmp_path / "labels.csv")},
                "heads": {"kind": "heads", "modality": "toy", "input": "spectra", "labels": ["temp"], "head": {"name": "ridge"}},
            },
        }
    )
    assert spec.stages["heads"].needs == ["ingest"]
    logs = []
    manifests = run_spec(spec, progress=False, log=logs.append)
    assert manifests["ingest"]["summary"]["n_spectra_written"] == 60
    assert sum(manifests["heads"]["summary"]["n_rows"].values()) == 60
    logs.clear()
    run_spec(spec, progress=False, log=logs.append)
    assert sum("reused" in line for line in logs) == 2
    write_file(tmp_path / "files" / "s0.toy.csv", raw, 1)
    logs.clear()
    run_spec(spec, progress=False, log=logs.append)
    assert any("[ingest] running" in line for line in logs), "an edited input file must rerun the ingest"


def test_label_table_keeps_id_columns_as_text(tmp_path):
    from specclip_core.data.ingest import read_label_table

    path = tmp_path / "labels.csv"
    path.write_text("source_id,teff\n3444348060956026368,5000\n,5100\n47974788992607488,\n")
    table = read_label_table(str(path), text_columns=["source_id"])
    assert table["source_id"].tolist() == ["3444348060956026368", "", "47974788992607488"]
    assert table["teff"][0] == 5000 and table["teff"][2] != table["teff"][2]


def test_ingest_records_simulated_spectra_and_where_labels_came_from(tmp_path, capsys):
    import numpy as np

    from specclip_core.data.ingest import ingest_files, mark_simulated
    from specclip_core.data.store import SpectralStore
    from specclip_core.errors import ReaderError
    from specclip_core.testing import cli_main
    from specclip_toy import make_raw, write_file

    raw = make_raw(4, 11)
    for row in range(4):
        write_file(tmp_path / f"s{row}.toy.csv", raw, row)
    labels = {"id": np.array(["s0", "s1", "s9"]), "temp": np.array([0.1, 0.2, 0.9])}
    report = ingest_files([tmp_path], "toy", tmp_path / "sim.zarr", labels=labels, simulated=True, progress=False)
    store = SpectralStore.open(tmp_path / "sim.zarr")
    assert store.simulated_modalities == ["toy"] and (store.labels(["simulated"])["simulated"] == 1).all()
    assert store.simulated_rows("toy").all() and report.n_simulated == 4 and report.simulated_from == "setting"
    match = report.labels
    assert (match.n_rows, match.n_rows_matched, match.n_spectra_without_row, match.n_ids_without_spectrum) == (3, 2, 2, 1)
    assert report.columns == {"temp": "the label table", "simulated": "ingest (the simulated setting)"}
    assert "labels: 3 rows in the table, 2 matched to a spectrum; 2 spectra without a label row; 1 label ids" in report.summary()

    report = ingest_files([tmp_path], "toy", tmp_path / "real.zarr", progress=False)
    store = SpectralStore.open(tmp_path / "real.zarr")
    assert "simulated" not in store.label_columns and store.simulated_modalities == [] and not store.simulated_rows("toy").any()
    assert report.n_simulated == 0 and report.labels is None

    flagged = raw.subset([0, 1])
    flagged.meta["simulated"] = np.array([True, False])
    reason = "the file says simulated = True, but the ingest's setting simulated is False"
    with __import__("pytest").raises(ReaderError, match=reason) as caught:
        mark_simulated(tmp_path / "x.toy.csv", flagged, False)
    assert caught.value.path == str(tmp_path / "x.toy.csv") and caught.value.check == "simulated-flag"
    assert mark_simulated(tmp_path / "x.toy.csv", flagged, None).meta["simulated"].tolist() == [True, False]

    with __import__("pytest").raises(Exception, match="column 'simulated' is set by ingest"):
        ingest_files([tmp_path], "toy", tmp_path / "bad.zarr", labels={"id": np.array(["s0"]), "simulated": np.array([1])}, progress=False)
    assert cli_main(["data", "ingest", "toy", str(tmp_path), "-o", str(tmp_path / "cli.zarr"), "--simulated"]) == 0
    assert "simulated: 4 of 4 spectra (from the simulated setting)" in capsys.readouterr().out

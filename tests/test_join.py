"""Joining stores by id (specclip_core.data.join) and the join stage, on tiny toy stores."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from specclip_core.data.crossmatch import CrossMatch
from specclip_core.data.join import join_stores
from specclip_core.data.store import SpectralStore
from specclip_core.errors import SpecCLIPError, SpecError
from specclip_core.runner import run_spec
from specclip_core.spec import validate_spec


def numbered_store(path, modality: str, ids, labels=None, simulated=()):
    """A one-modality toy store whose rows have the given ids (and float labels)."""
    from specclip_toy import MODALITIES, make_raw

    view = MODALITIES[modality]()
    raw = make_raw(len(ids), 3, np.linspace(view.wavelength[0] - 50, view.wavelength[-1] + 50, 3 * view.n_pixels))
    spectra = view.preprocess(raw)
    labels = {"temp": raw.meta["temp"], **(labels or {})}
    kinds = {k: "int" if np.asarray(v).dtype.kind in "iu" else "float" for k, v in labels.items()}
    with SpectralStore.build(path, {modality: view}, kinds, {"simulated_modalities": list(simulated)}) as store:
        store.append(ids, {modality: spectra}, labels)
    return SpectralStore.open(path)


def test_equal_id_join_merges_modalities_and_prefixes_clashing_labels(tmp_path):
    from specclip_toy import make_paired_store, make_store

    narrow = make_store(tmp_path / "a.zarr", n=50, seed=0)
    broad = make_paired_store(tmp_path / "b.zarr", modalities=("toy_broad",), n=40, seed=0, simulated=("toy_broad",))
    report = join_stores({"a": narrow, "b": broad}, tmp_path / "joined.zarr")
    joined = SpectralStore.open(tmp_path / "joined.zarr")
    assert report.n_rows == len(joined) == 40 and list(joined.ids) == list(narrow.ids[:40])
    assert joined.modalities == ["toy", "toy_broad"]
    assert joined.label_columns == {"temp": "float", "kind": "str", "b_temp": "float", "b_id": "str", "simulated_toy_broad": "int"}
    labels = joined.labels()
    np.testing.assert_array_equal(labels["temp"], narrow.labels(["temp"])["temp"][:40])
    np.testing.assert_array_equal(labels["b_temp"], broad.labels(["temp"])["temp"])
    np.testing.assert_array_equal(joined.read("toy_broad")["flux"], broad.read("toy_broad")["flux"])
    assert (labels["simulated_toy_broad"] == 1).all() and joined.simulated_modalities == ["toy_broad"]
    assert report.inputs["a"].rows == 50 and report.inputs["a"].matched == 40 and report.inputs["b"].matched == 40
    assert report.inputs["b"].simulated == {"toy_broad": {"simulated": 40, "real": 0}}
    assert report.inputs["a"].simulated == {"toy": {"simulated": 0, "real": 40}}
    assert report.columns["b_temp"] == "b: temp" and report.columns["kind"] == "a: kind" and report.columns["b_id"] == "b: (row id)"
    meta = joined.meta["joined_from"]
    assert meta["a"]["columns"] == {"temp": "temp", "kind": "kind"} and meta["b"]["columns"] == {"temp": "b_temp", "(row id)": "b_id"}
    assert "| b | " in report.markdown() and "b_temp" in report.markdown()


def test_crossmatch_join_counts_every_row_of_the_table(tmp_path):
    xp = numbered_store(tmp_path / "x.zarr", "toy", ["3444348060956026368", "47974788992607488", "11", "12", "13"])
    flags = {"simulated": np.array([0, 0, 1, 1, 1, 1])}
    ls = numbered_store(tmp_path / "l.zarr", "toy_broad", ["948709160", "966003093", "21", "22", "23", "24"], flags, ("toy_broad",))
    table = tmp_path / "match.csv"
    table.write_text(
        "obsid,source_id\n"
        "948709160.0,3444348060956026368\n"  # float-written obsid: still matches
        "966003093,47974788992607488\n"
        "966003093,47974788992607488\n"  # repeats the row above: used once
        "21,11\n"
        "22,12\n"
        "22,13\n"  # 22 paired with two sources: ambiguous, both rows excluded
        "23,\n"  # no source id
        "99,11\n"  # 99 is in no store... and 11 is now paired twice: ambiguous too
    )
    crossmatch = CrossMatch.read(table, {"lamost": "obsid", "xp": "source_id"})
    report = join_stores({"xp": xp, "lamost": ls}, tmp_path / "j.zarr", crossmatch)
    joined = SpectralStore.open(tmp_path / "j.zarr")
    assert sorted(joined.ids) == ["3444348060956026368", "47974788992607488"]
    assert sorted(joined.labels(["lamost_id"])["lamost_id"]) == ["948709160", "966003093"]
    c = report.crossmatch
    counts = [c[f"rows_{k}"] for k in ("read", "incomplete", "repeated", "ambiguous", "unmatched", "matched")]
    assert counts == [8, 1, 1, 4, 0, 2]
    assert c["ambiguous_ids"] == {"xp": ["11"], "lamost": ["22"]}
    assert report.inputs["lamost"].simulated == {"toy_broad": {"simulated": 0, "real": 2}}
    assert "simulated" not in joined.label_columns and "simulated_toy_broad" in joined.label_columns
    assert joined.simulated_modalities == ["toy_broad"], "the inputs' simulated modalities carry over"


def test_unmatched_rows_and_duplicated_ids_are_reported(tmp_path):
    a = numbered_store(tmp_path / "a.zarr", "toy", ["1", "2", "3", "4"])
    b = numbered_store(tmp_path / "b.zarr", "toy_broad", ["1", "2", "2.0", "5"])  # "2" and "2.0" are the same id
    report = join_stores({"a": a, "b": b}, tmp_path / "j.zarr")
    assert report.n_rows == 1 and list(SpectralStore.open(tmp_path / "j.zarr").ids) == ["1"]
    assert report.inputs["b"].duplicated_ids == ["2"] and report.inputs["b"].n_duplicated_ids == 1
    assert report.inputs["a"].matched == 1 and report.inputs["a"].rows == 4
    table = tmp_path / "m.csv"
    table.write_text("a,b\n1,1\n3,5\n4,77\n")
    report = join_stores({"a": a, "b": b}, tmp_path / "k.zarr", CrossMatch.read(table, {"a": "a", "b": "b"}))
    assert report.crossmatch["rows_unmatched"] == 1 and report.crossmatch["ids_not_in_store"] == {"a": 0, "b": 1} and report.n_rows == 2
    empty = tmp_path / "none.csv"
    empty.write_text("a,b\n7,8\n")
    with pytest.raises(SpecCLIPError, match="matched no row"):
        join_stores({"a": a, "b": b}, tmp_path / "n.zarr", CrossMatch.read(empty, {"a": "a", "b": "b"}))
    assert not (tmp_path / "n.zarr").exists()


def test_bad_joins_say_what_is_wrong(tmp_path):
    from specclip_toy import make_store

    a = numbered_store(tmp_path / "a.zarr", "toy", ["1", "2"], {"b_temp": np.array([1.0, 2.0])})
    b = numbered_store(tmp_path / "b.zarr", "toy_broad", ["1", "2"])
    with pytest.raises(SpecCLIPError, match="'b_temp' \\(b: temp\\) clashes with 'b_temp' \\(a: b_temp\\)"):
        join_stores({"a": a, "b": b}, tmp_path / "j.zarr")
    other = make_store(tmp_path / "c.zarr", n=4)
    with pytest.raises(SpecCLIPError, match="stores 'a' and 'c' both hold modality 'toy'"):
        join_stores({"a": a, "c": other}, tmp_path / "j.zarr")
    table = tmp_path / "m.csv"
    table.write_text("obsid,source\n1,1\n")
    expected = "m.csv: no column 'source_id' \\(ids of store 'b'\\); the table's columns are \\['obsid', 'source'\\]"
    with pytest.raises(SpecCLIPError, match=expected):
        CrossMatch.read(table, {"a": "obsid", "b": "source_id"})
    with pytest.raises(SpecCLIPError, match="no column given for \\['b'\\]"):
        join_stores({"a": a, "b": b}, tmp_path / "j.zarr", CrossMatch.read(table, {"a": "obsid"}))


def _join_spec(tmp_path, a, b, table=None, **stage):
    join = {"kind": "join", "stores": {"a": {"store": str(a.path)}, "b": {"stage": "copy"}}, **stage}
    if table is not None:
        join["crossmatch"] = {"table": str(table), "columns": {"a": "a", "b": "b"}}
    return validate_spec(
        {
            "name": "join",
            "run_dir": str(tmp_path / "run"),
            "stages": {
                "copy": {"kind": "join", "stores": {"b": {"store": str(b.path)}, "b2": {"store": str(b.path.with_name("b2.zarr"))}}},
                "join": join,
            },
        }
    )


def test_join_stage_reads_earlier_stages_and_reruns_when_an_input_changes(tmp_path):
    from specclip_toy import make_paired_store, make_store

    a = make_store(tmp_path / "a.zarr", n=30, seed=0)
    b = make_paired_store(tmp_path / "b.zarr", modalities=("toy_broad",), n=20, seed=0)
    make_paired_store(tmp_path / "b2.zarr", modalities=("toy_narrow",), n=20, seed=0)
    spec = _join_spec(tmp_path, a, b)
    assert spec.stages["join"].needs == ["copy"], "a stage named in stores is needed"
    logs = []
    manifests = run_spec(spec, progress=False, log=logs.append)
    run = tmp_path / "run" / "join"
    report = json.loads((run / "join_report.json").read_text())
    assert report["n_rows"] == 20 and report["store"] == "store.zarr" and (run / "join_report.md").is_file()
    assert SpectralStore.open(run / "store.zarr").modalities == ["toy", "toy_broad", "toy_narrow"]
    inputs = manifests["join"]["inputs"]
    assert inputs["store:a"]["fingerprint"] == a.fingerprint and "stage:copy" in inputs
    assert manifests["join"]["summary"]["inputs"]["a"] == {"rows": 30, "matched": 20, "simulated": {"toy": {"simulated": 0, "real": 20}}}

    logs.clear()
    run_spec(spec, progress=False, log=logs.append)
    assert sum("reused" in line for line in logs) == 2
    shutil.rmtree(a.path)
    make_store(tmp_path / "a.zarr", n=30, seed=0)  # the same content, a new revision
    logs.clear()
    run_spec(spec, progress=False, log=logs.append)
    assert any("[join] running" in line for line in logs) and any("[copy] reused" in line for line in logs)

    table = tmp_path / "m.csv"
    table.write_text("a,b\n" + "".join(f"toy-0-{i},toy-0-{i}\n" for i in range(5)))
    spec = _join_spec(tmp_path, a, b, table, id_from="b")
    run_spec(spec, progress=False, log=logs.append)
    assert json.loads((run / "join_report.json").read_text())["crossmatch"]["rows_matched"] == 5
    table.write_text("a,b\n" + "".join(f"toy-0-{i},toy-0-{i}\n" for i in range(6)))
    logs.clear()
    run_spec(spec, progress=False, log=logs.append)
    assert any("[join] running" in line for line in logs), "an edited cross-match table must rerun the join"
    assert json.loads((run / "join_report.json").read_text())["n_rows"] == 6


def test_join_settings_are_checked_when_the_spec_is_validated(tmp_path):
    base = {"name": "j", "stages": {"join": {"kind": "join", "stores": {"a": {"store": "a.zarr"}, "b": {"store": "b.zarr"}}}}}
    bad = {
        "id_from": ("c", "id_from 'c' is not one of the stores"),
        "crossmatch": ({"table": "m.csv", "columns": {"a": "x"}}, "no column for \\['b'\\]"),
    }
    for key, (value, message) in bad.items():
        data = json.loads(json.dumps(base))
        data["stages"]["join"][key] = value
        with pytest.raises(SpecError, match=message):
            validate_spec(data)
    data = json.loads(json.dumps(base))
    data["stages"]["join"]["stores"] = {"a": {"store": "a.zarr"}}
    with pytest.raises(SpecError, match="stages.join.stores"):
        validate_spec(data)
    data["stages"]["join"]["stores"] = {"a": {"store": "a.zarr"}, "b/c": {"store": "b.zarr"}}
    with pytest.raises(SpecError, match="stages.join.stores"):
        validate_spec(data)

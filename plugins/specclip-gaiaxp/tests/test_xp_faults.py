"""A corpus of bad Gaia XP tables, generated from the real ones: each is rejected by name with the
right reason (or, where the damage is harmless, read unchanged), and ingest keeps every good spectrum."""

from __future__ import annotations

import gzip
import os

import numpy as np
import pytest

from specclip_core.api import ReaderError, SpectralStore, choose_reader, ingest_files, readers_for
from specclip_core.testing import Tally, bit_flips, deadline, meet_reader

TABLES = ("XP_SAMPLED_RAW_dr3int6.csv", "XP_CONTINUOUS_RAW.csv")


def _read(path):
    return choose_reader(path, list(readers_for("gaia_xp"))).read(path)


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _bad_tables(data_dir, directory):
    """The corpus: (case, path, expected (check, words in the reason), the spectra a harmless damage leaves unchanged)."""
    cases = []
    for table in TABLES:
        text = (data_dir / table).read_text()
        reference = _read(data_dir / table)
        stem = table.removesuffix(".csv")

        def write(name, content, expected, same=None):
            path = directory / f"{stem}-{name}"
            path.write_bytes(content if isinstance(content, bytes) else content.encode())
            cases.append((path.name, path, expected, same))

        head, *rows = _lines(text)
        last = rows[-1]
        write("cut-row.csv", head + "".join(rows[:-1]) + last[: len(last) // 2] + "\n", ("table-row", f"line {len(rows) + 1} has"))
        write("cut-row-in-array.csv", head + "".join(rows[:-1]) + last[: len(last) // 3] + "\n", ("table-row", "a truncated row?"))
        write("cut-no-newline.csv", text[: len(text) // 2], ("table-row", "does not end with a line break"))
        write("empty.csv", b"", ("empty", "empty file"))
        write("random.csv", np.random.default_rng(1).bytes(3000).replace(b",", b";"), ("sniff", "no reader recognises"))
        compressed = gzip.compress(text.encode(), mtime=0)
        for position, damaged in bit_flips(compressed, 30, seed=2):
            write(f"flip-{position}.csv.gz", damaged, ("gzip", ""), reference)
        write("cut.csv.gz", compressed[: len(compressed) // 2], ("gzip", "truncated gzip file"))
    os.mkfifo(directory / "fifo.csv")
    cases.append(("fifo.csv", directory / "fifo.csv", ("regular-file", "FIFO"), None))
    return cases


def test_every_bad_table_is_rejected_by_name_with_its_reason(data_dir, tmp_path):
    tally = Tally("XP tables, readers")
    for case, path, expected, same in _bad_tables(data_dir, tmp_path):
        meet_reader(tally, case, path, _read, expected, same, seconds=30)
    print(tally.summary())
    tally.assert_clean()
    assert tally.tried >= 70


def test_predict_lists_every_bad_table_and_keeps_every_good_spectrum(data_dir, tmp_path, capsys, monkeypatch):
    """``specclip predict`` on the good tables and the whole corpus at once, with a tiny model."""
    from astropy.table import Table

    from specclip_core.api import Spectra, get_modality, run_spec, validate_spec
    from specclip_core.testing import cli_main

    monkeypatch.setenv("SPECCLIP_PROGRESS", "0")
    good = _read(data_dir / TABLES[0])
    rng = np.random.default_rng(0)
    copies = 32
    flux = np.repeat(np.nan_to_num(good.flux), copies, axis=0) * rng.normal(1, 0.01, (copies * len(good), 1))
    noisy = Spectra(good.wavelength, flux, np.repeat(good.ivar, copies, axis=0), np.repeat(good.mask, copies, axis=0),
                    [f"{sid}{k}" for sid in good.ids for k in range(copies)], {"teff": rng.uniform(4000, 6000, copies * len(good))})
    modality = get_modality("gaia_xp")
    processed = modality.preprocess(noisy)
    with SpectralStore.build(tmp_path / "train.zarr", {modality.name: modality}, {"teff": "float"}) as store:
        store.append(processed.ids, {modality.name: processed}, {"teff": processed.meta["teff"]})
    tiny = {"epochs": 1, "batch_size": 16, "device": "cpu", "patience": None}
    spec = validate_spec({
        "name": "xp-tiny", "run_dir": str(tmp_path / "run"), "data": {"store": str(tmp_path / "train.zarr")},
        "stages": {
            "pretrain": {"kind": "pretrain", "modality": "gaia_xp", "encoder": {"name": "mlp_autoencoder", "size": "small"}, "objectives": [{"name": "reconstruction"}], "train": tiny},
            "heads": {"kind": "heads", "needs": ["pretrain"], "modality": "gaia_xp", "labels": ["teff"], "head": {"name": "mlp", "hidden": [8]}, "train": tiny},
        },
    })
    run_spec(spec, progress=False, log=lambda *_: None)
    (tmp_path / "bad").mkdir()
    cases = _bad_tables(data_dir, tmp_path / "bad")
    catalog = tmp_path / "catalog.csv"
    tally = Tally("XP tables, predict")
    with deadline(120):
        code = cli_main(["predict", str(tmp_path / "run"), *(str(data_dir / t) for t in TABLES), *(str(p) for _, p, _, _ in cases), "-o", str(catalog), "--quiet"])
    assert code == 0, capsys.readouterr().err
    listed = {str(p) for p in Table.read(tmp_path / "catalog.csv.rejected.csv", format="ascii.csv")["input"]}
    for case, path, _, same in cases:
        if str(path) in listed:
            tally.outcome(case, "right_reason")
            continue
        read = _read(path)  # predicted: only right if the damage left the spectra as they were
        unchanged = same is not None and all(np.array_equal(getattr(read, n), getattr(same, n), equal_nan=True) for n in ("flux", "ivar", "ids"))
        tally.outcome(case, "right_reason" if unchanged else "silently_wrong")
    table = Table.read(catalog, format="ascii.csv", comment="#")
    table = table[np.asarray(table["reason"].filled(""), dtype=str) == ""]  # the rows of rejected inputs have a reason
    expected = {str(sid) for t in TABLES for sid in _read(data_dir / t).ids}
    tally.good_lost = len(expected - set(table["id"].astype(str)))
    print(tally.summary())
    tally.assert_clean()
    assert tally.tried >= 70


def test_ingest_keeps_every_good_spectrum_among_bad_tables(data_dir, tmp_path):
    text = (data_dir / TABLES[0]).read_text()
    head, *rows = _lines(text)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "a.csv").write_text(head + rows[0])
    (mixed / "b.csv").write_text(head + "".join(rows[1:]))
    (mixed / "c.csv").write_text(head + rows[0])  # the same source id as a.csv
    (mixed / "d.csv").write_text(head + rows[1] + rows[1])  # one source id on two rows of one table
    (mixed / "e.csv").write_text(head + rows[0][: len(rows[0]) // 2] + "\n")
    fields = rows[0].split(",", 4)
    big = "(" + ", ".join(["1e38"] * 343) + ")"
    (mixed / "f.csv").write_text(head + ",".join(["777", *fields[1:4], f'"{big}","{big}"']) + "\n")
    tally = Tally("XP tables, ingest")
    with deadline(60):
        report = ingest_files([mixed], "gaia_xp", tmp_path / "out.zarr", progress=False)
    ingest_files([data_dir / TABLES[0]], "gaia_xp", tmp_path / "clean.zarr", progress=False)
    found = {(os.path.basename(p.file), p.check) for p in report.problems}
    # f.csv overflows the flux unit: no usable pixel, rejected by preprocessing
    expected = {("c.csv", "duplicate-id"), ("d.csv", "duplicate-id"), ("e.csv", "table-row"), ("f.csv", "preprocess")}
    for name, check in sorted(expected):
        tally.outcome(name, "right_reason" if (name, check) in found else "wrong_reason")
    store, reference = SpectralStore.open(tmp_path / "out.zarr"), SpectralStore.open(tmp_path / "clean.zarr")
    tally.good_lost = len(set(reference.ids) - set(store.ids))
    kept, clean_flux = (s.read("gaia_xp", np.argsort(s.ids))["flux"] for s in (store, reference))
    tally.silently_wrong += int(not np.array_equal(kept, clean_flux))
    print(tally.summary())
    tally.assert_clean()
    assert report.n_spectra_written == len(reference) and {d["id"] for d in report.duplicates} == set(reference.ids)


def _many_rows(text: str, copies: int) -> str:
    """The table's rows repeated ``copies`` times, each copy with its own source ids."""
    head, *rows = _lines(text)
    out = [head]
    for copy in range(copies):
        for row in rows:
            sid, rest = row.split(",", 1)
            out.append(f"{int(sid) + copy * 1_000_003},{rest}")
    return "".join(out)


def test_tables_read_in_pieces_equal_the_whole(data_dir, tmp_path):
    for table in TABLES:
        path = tmp_path / table
        path.write_text(_many_rows((data_dir / table).read_text(), 3))
        reader = choose_reader(path, list(readers_for("gaia_xp")))
        whole = reader.read(path)
        pieces = list(reader.read_chunks(path, 2))
        assert len(whole) >= 6 and [len(p) for p in pieces] == [2] * (len(whole) // 2) + ([len(whole) % 2] if len(whole) % 2 else [])
        for name in ("flux", "ivar", "mask", "ids"):
            np.testing.assert_array_equal(np.concatenate([getattr(p, name) for p in pieces]), getattr(whole, name))


def test_a_table_cut_in_its_last_piece_is_rejected_whole_at_ingest(data_dir, tmp_path):
    text = _many_rows((data_dir / TABLES[1]).read_text(), 3)
    cut = text[: len(text) - len(_lines(text)[-1]) // 2] + "\n"
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "good.csv").write_text((data_dir / TABLES[0]).read_text())
    (tmp_path / "in" / "cut.csv").write_text(cut)
    report = ingest_files([tmp_path / "in"], "gaia_xp", tmp_path / "out.zarr", progress=False, chunk=2)
    good = _read(data_dir / TABLES[0])
    assert sorted(SpectralStore.open(tmp_path / "out.zarr").ids) == sorted(good.ids), "every good spectrum, none of the cut table's"
    (problem,) = report.problems
    assert problem.file == str(tmp_path / "in" / "cut.csv") and problem.check == "table-row" and "line 7 has" in problem.reason


def test_continuous_pieces_stay_within_one_gaiaxpy_call_and_name_the_files_row(data_dir, tmp_path, monkeypatch):
    from specclip_gaiaxp import calibrate
    from specclip_gaiaxp.continuous import GaiaXPContinuousReader

    monkeypatch.setattr(calibrate, "CHUNK", 2)
    path = tmp_path / "many.csv"
    path.write_text(_many_rows((data_dir / TABLES[1]).read_text(), 3))
    assert [len(piece) for piece in GaiaXPContinuousReader().read_chunks(path, 5)] == [2, 2, 2], "coefficients are sampled and let go 2 rows at a time"
    head, *rows = _lines(path.read_text())
    rows[4] = rows[4].replace("(56947.03696840172, ", "(", 1)
    path.write_text(head + "".join(rows))
    with pytest.raises(ReaderError, match=r"row 4 \(source .*54 coefficients, 55 errors"):
        list(GaiaXPContinuousReader().read_chunks(path, 5))

"""A corpus of bad Gaia XP tables, generated from the real ones: each is rejected by name with the
right reason (or, where the damage is harmless, read unchanged), and ingest keeps every good spectrum."""

from __future__ import annotations

import gzip
import os

import numpy as np

from specclip_core.api import SpectralStore, choose_reader, ingest_files, readers_for
from specclip_core.testing import Tally, bit_flips, deadline, meet_reader

TABLES = ("XP_SAMPLED_RAW_dr3int6.csv", "XP_CONTINUOUS_RAW.csv")


def _read(path):
    return choose_reader(path, list(readers_for("gaia_xp"))).read(path)


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def test_every_bad_table_is_rejected_by_name_with_its_reason(data_dir, tmp_path):
    tally = Tally("XP tables, readers")
    for table in TABLES:
        text = (data_dir / table).read_text()
        reference = _read(data_dir / table)
        stem = table.removesuffix(".csv")
        cases = []

        def write(name, content, expected, same=None):
            path = tmp_path / f"{stem}-{name}"
            path.write_bytes(content if isinstance(content, bytes) else content.encode())
            cases.append((path, expected, same))

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
        for path, expected, same in cases:
            meet_reader(tally, path.name, path, _read, expected, same, seconds=30)
    os.mkfifo(tmp_path / "fifo.csv")
    meet_reader(tally, "fifo.csv", tmp_path / "fifo.csv", _read, ("regular-file", "FIFO"), seconds=30)
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

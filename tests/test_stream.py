"""Ingest and predict read their inputs in chunks: the store does not depend on the chunk size, and a
file that fails after some of its spectra were read is dropped whole, never half kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from specclip_core.errors import ReaderError


def _files(directory, n=6, seed=4):
    from specclip_toy import make_raw, write_file

    directory.mkdir(exist_ok=True)
    raw = make_raw(n, seed)
    return [write_file(directory / f"s{row}.toy.csv", raw, row) for row in range(n)]


def _arrays(path):
    from specclip_core.data.store import SpectralStore

    store = SpectralStore.open(path)
    spectra = store.spectra("toy")
    return spectra.ids, spectra.flux, spectra.ivar, spectra.mask, spectra.stats


@pytest.mark.parametrize("chunk", [1, 2, 5])
def test_the_store_does_not_depend_on_the_chunk_size(tmp_path, chunk):
    from specclip_core.data.ingest import ingest_files

    _files(tmp_path / "files")
    whole = ingest_files([tmp_path / "files"], "toy", tmp_path / "whole.zarr", progress=False)
    chunked = ingest_files([tmp_path / "files"], "toy", tmp_path / "chunked.zarr", progress=False, chunk=chunk)
    assert whole.n_spectra_written == chunked.n_spectra_written == 6
    for a, b in zip(_arrays(tmp_path / "whole.zarr"), _arrays(tmp_path / "chunked.zarr"), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not list(tmp_path.glob(".*staging*")), "the staging directory is removed"


def _failing_after_first_piece(monkeypatch):
    """Toy files named bad-*.toy.csv give their spectrum as a first piece, then fail (a table cut short)."""
    from specclip_toy import ToyReader

    def read_chunks(self, path, rows):
        yield self.read(path)
        if path.name.startswith("bad-"):
            raise ReaderError(path, "line 9 has 2 fields, the header 3 (a truncated row?)", check="table-row")

    monkeypatch.setattr(ToyReader, "read_chunks", read_chunks)


@pytest.mark.parametrize("chunk", [1, 100])
def test_a_file_failing_part_way_is_dropped_whole_at_ingest(tmp_path, monkeypatch, chunk):
    from specclip_core.data.ingest import ingest_files
    from specclip_toy import make_raw, write_file

    paths = _files(tmp_path / "files")
    write_file(tmp_path / "files" / "bad-1.toy.csv", make_raw(1, 9), 0)
    _failing_after_first_piece(monkeypatch)
    report = ingest_files([tmp_path / "files"], "toy", tmp_path / "out.zarr", progress=False, chunk=chunk)
    ids = _arrays(tmp_path / "out.zarr")[0]
    assert sorted(ids) == sorted(p.name.removesuffix(".toy.csv") for p in paths), "every good spectrum kept, none of the bad file"
    (problem,) = report.problems
    assert problem.file == str(tmp_path / "files" / "bad-1.toy.csv") and problem.check == "table-row" and "line 9" in problem.reason


def test_predict_drops_the_rows_of_a_file_failing_part_way(tmp_path, monkeypatch):
    from specclip_core.predict import PredictInputs
    from specclip_toy import make_raw, write_file

    _files(tmp_path / "files", n=3)
    write_file(tmp_path / "files" / "bad-1.toy.csv", make_raw(1, 9), 0)
    _failing_after_first_piece(monkeypatch)
    inputs = PredictInputs([str(tmp_path / "files")], "toy", chunk=1, progress=False)
    rows = [(spectra.ids, files) for spectra, _, files in inputs]
    bad = [i for i, path in enumerate(inputs.stream.files) if path.name.startswith("bad-")]
    assert inputs.failed == set(bad) and any(files[0] in bad for _, files in rows), "its first piece was given, then the file failed"
    assert [where for where, _ in inputs.rejected] == [str(tmp_path / "files" / "bad-1.toy.csv")]


def test_entries_a_reader_skips_are_reported_with_their_file(tmp_path, monkeypatch):
    from specclip_core.data.ingest import ingest_files
    from specclip_toy import ToyReader

    paths = _files(tmp_path / "files", n=3)
    read = ToyReader.read

    def read_with_a_skip(self, path):
        spectra = read(self, path)
        if path == paths[1]:
            spectra.skipped = [("fibre-17", "no target on fibre 17")]
        return spectra

    monkeypatch.setattr(ToyReader, "read", read_with_a_skip)
    report = ingest_files([tmp_path / "files"], "toy", tmp_path / "out.zarr", progress=False)
    assert report.n_spectra_written == 3
    assert report.rejected_spectra == [("fibre-17", "no target on fibre 17")]
    assert [(p.file, p.check) for p in report.problems] == [(str(paths[1]), "reader-skip")]


@pytest.mark.parametrize("chunk", [2, 100])
def test_worker_processes_give_the_rows_and_reports_of_one_process(tmp_path, monkeypatch, chunk):
    from specclip_core.components import get_modality
    from specclip_core.data.stream import SpectraStream
    from specclip_toy import make_raw, write_file

    _files(tmp_path / "files", n=12)
    write_file(tmp_path / "files" / "bad-1.toy.csv", make_raw(1, 9), 0)
    (tmp_path / "files" / "empty.toy.csv").write_bytes(b"")
    _failing_after_first_piece(monkeypatch)

    def read(workers):
        stream = SpectraStream([tmp_path / "files"], get_modality("toy"), chunk=chunk, progress=False, workers=workers)
        batches = list(stream)
        keep = [~np.isin(b.files, sorted(stream.failed)) for b in batches]
        ids = np.concatenate([b.spectra.ids[k] for b, k in zip(batches, keep)])
        flux = np.concatenate([b.spectra.flux[k] for b, k in zip(batches, keep)])
        files = [stream.files[i].name for b, k in zip(batches, keep) for i in b.files[k]]
        return ids, flux, files, sorted(stream.problems), (stream.n_files_read, len(stream.files))

    one, two = read(1), read(2)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], two[1])
    assert one[2] == two[2] and len(one[2]) == 12 and "bad-1.toy.csv" not in one[2]
    assert one[3] == two[3] and {Path(p[0]).name for p in one[3]} == {"bad-1.toy.csv", "empty.toy.csv"}
    assert one[4] == two[4]


def _logged_reads(tmp_path, monkeypatch):
    """The toy reader, writing the name of every file it reads to a log; returns the log's path."""
    from specclip_toy import ToyReader

    log, read = tmp_path / "read.log", ToyReader.read

    def logged(self, path):
        with open(log, "a") as handle:
            handle.write(f"{path.name}\n")
        return read(self, path)

    monkeypatch.setattr(ToyReader, "read", logged)
    return log


def _read_names(log) -> list[str]:
    return log.read_text().split() if log.exists() else []


def test_workers_read_a_few_groups_ahead_and_the_consumer_gets_the_cpus_of_those_done(tmp_path, monkeypatch):
    import time

    import torch
    from specclip_core import threads
    from specclip_core.components import get_modality
    from specclip_core.data import stream as stream_module
    from specclip_core.data.stream import READ_AHEAD, SpectraStream

    monkeypatch.setattr(threads, "available_cpus", lambda: 4)
    monkeypatch.setattr(threads, "_applied", None)
    monkeypatch.setattr(stream_module, "READ_AHEAD_BYTES", 0)
    _files(tmp_path / "files", n=12)
    log = _logged_reads(tmp_path, monkeypatch)
    before = torch.get_num_threads()
    try:
        threads.use_threads(3)
        batches = iter(SpectraStream([tmp_path / "files"], get_modality("toy"), chunk=1, progress=False, workers=2))
        next(batches)
        ahead = 1 + READ_AHEAD * 2  # the group taken, those read ahead, and one given for the one taken
        deadline = time.monotonic() + 30
        while len(_read_names(log)) < ahead and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        assert len(_read_names(log)) == ahead, "the workers wait for the consumer instead of reading every file"
        seen = []
        for _ in batches:
            seen.append(torch.get_num_threads())
            time.sleep(0.3)  # a slow head: the workers finish what they were given
        assert seen == [2] * 7 + [3] * 4, "one worker was just given a group; at the end none has work"
    finally:
        threads.use_threads(before)


def test_started_workers_read_every_small_file_before_the_consumer_iterates(tmp_path, monkeypatch):
    import time

    from specclip_core.components import get_modality
    from specclip_core.data.stream import SpectraStream

    _files(tmp_path / "files", n=12)
    log = _logged_reads(tmp_path, monkeypatch)
    stream = SpectraStream([tmp_path / "files"], get_modality("toy"), chunk=1, progress=False, workers=2)
    stream.start()
    try:
        deadline = time.monotonic() + 30
        while len(_read_names(log)) < 12 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(_read_names(log)) == 12, "files far smaller than READ_AHEAD_BYTES are all read while the consumer sets up"
        ids = np.concatenate([batch.spectra.ids for batch in stream])
    finally:
        stream.close()
    assert len(ids) == 12 and len(_read_names(log)) == 12, "iterating takes what was read ahead, reading nothing twice"


def test_closing_a_started_stream_stops_its_workers_without_iterating(tmp_path, monkeypatch):
    import multiprocessing
    import time

    from specclip_core.components import get_modality
    from specclip_core.data import stream as stream_module
    from specclip_core.data.stream import SpectraStream

    monkeypatch.setattr(stream_module, "READ_AHEAD_BYTES", 0)
    _files(tmp_path / "files", n=40)
    log = _logged_reads(tmp_path, monkeypatch)
    stream = SpectraStream([tmp_path / "files"], get_modality("toy"), chunk=1, progress=False, workers=2)
    stream.start()
    deadline = time.monotonic() + 30
    while not _read_names(log) and time.monotonic() < deadline:
        time.sleep(0.05)
    stream.close()
    time.sleep(0.3)
    assert not multiprocessing.active_children(), "close() ends the worker processes"
    assert 0 < len(_read_names(log)) < 40, "the workers stop a few groups ahead: closing leaves the rest unread"
    stream.close()

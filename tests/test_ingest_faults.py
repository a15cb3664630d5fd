"""Ingest under bad input: every good spectrum kept, every bad file or spectrum reported by name
with its reason and the check that failed; nothing given by name can hang a read."""

from __future__ import annotations

import os

import numpy as np
import pytest

from specclip_core.testing import deadline


def _files(directory, n=4, seed=3):
    from specclip_toy import make_raw, write_file

    directory.mkdir(exist_ok=True)
    raw = make_raw(n, seed)
    return raw, [write_file(directory / f"s{row}.toy.csv", raw, row) for row in range(n)]


def test_non_regular_files_are_rejected_at_once_without_opening(tmp_path):
    from specclip_core.data.ingest import ingest_files

    _, good = _files(tmp_path / "files")
    os.mkfifo(tmp_path / "pipe.toy.csv")
    (tmp_path / "loop.toy.csv").symlink_to(tmp_path / "loop.toy.csv")
    (tmp_path / "dangling.toy.csv").symlink_to(tmp_path / "absent")
    (tmp_path / "dir.toy.csv").mkdir()
    named = ["pipe.toy.csv", "loop.toy.csv", "dangling.toy.csv", "dir.toy.csv", "missing.toy.csv"]
    with deadline(20):
        report = ingest_files([*good, *(tmp_path / n for n in named)], "toy", tmp_path / "out.zarr", progress=False)
    assert report.n_spectra_written == len(good)
    found = {os.path.basename(p.file): (p.check, p.reason) for p in report.problems}
    assert found["pipe.toy.csv"] == ("regular-file", "not a regular file (a FIFO (named pipe)); only regular files are read")
    assert "dir.toy.csv" not in found  # a directory given is searched (here: nothing in it)
    assert found["loop.toy.csv"] == ("exists", "symbolic link loop")
    assert found["dangling.toy.csv"] == ("exists", "dangling symbolic link")
    assert found["missing.toy.csv"] == ("exists", "no such file")


def test_a_reader_is_never_chosen_for_a_directory(tmp_path):
    from specclip_core.components import readers_for
    from specclip_core.data.stream import choose_reader
    from specclip_core.errors import ReaderError

    (tmp_path / "dir.toy.csv").mkdir()
    with pytest.raises(ReaderError, match="not a regular file \\(a directory\\)"):
        choose_reader(tmp_path / "dir.toy.csv", list(readers_for("toy")))


def test_overflowing_values_are_masked_or_rejected_never_stored(tmp_path):
    from specclip_core.data.ingest import ingest_files
    from specclip_core.data.store import SpectralStore
    from specclip_toy import write_file

    raw, _ = _files(tmp_path / "files", n=3)
    raw.flux[1] = 1e38
    write_file(tmp_path / "files" / "s1.toy.csv", raw, 1)
    with np.errstate(over="ignore"):
        report = ingest_files([tmp_path / "files"], "toy", tmp_path / "out.zarr", progress=False)
    assert report.n_spectra_written == 2
    (problem,) = report.problems
    assert (os.path.basename(problem.file), problem.id, problem.check) == ("s1.toy.csv", "s1", "finite")
    assert "no finite flux and ivar" in problem.reason
    store = SpectralStore.open(tmp_path / "out.zarr")
    arrays = store.read("toy")
    assert all(np.isfinite(arrays[name]).all() for name in ("flux", "ivar", "stats"))


def test_finite_or_masked_masks_single_pixels():
    from specclip_core.data.stream import finite_or_masked
    from specclip_core.interfaces import Spectra

    flux = np.ones((2, 4), np.float32)
    ivar = np.ones((2, 4), np.float32)
    ivar[0, 1] = np.inf
    flux[1, 2] = np.nan
    spectra, unusable = finite_or_masked(Spectra(np.arange(4.0), flux, ivar, np.zeros((2, 4), bool), ["a", "b"], stats=np.ones((2, 2))))
    assert not unusable and spectra.mask[0, 1] and spectra.mask[1, 2] and spectra.mask.sum() == 2
    assert np.isfinite(spectra.flux).all() and spectra.ivar[0, 1] == 0


def test_files_no_pattern_matches_are_sniffed_and_the_rest_listed(tmp_path):
    from specclip_core.data.ingest import ingest_files

    _, good = _files(tmp_path / "files")
    (tmp_path / "files" / "README.txt").write_text("not a spectrum\n")
    report = ingest_files([tmp_path / "files"], "toy", tmp_path / "out.zarr", progress=False)
    assert report.n_spectra_written == len(good) and not report.problems
    assert report.unrecognised_files == [str(tmp_path / "files" / "README.txt")]
    assert "1 files in the directories no reader takes" in report.summary()


def test_the_store_is_committed_with_its_report(tmp_path):
    from specclip_core.data.ingest import ingest_files
    from specclip_core.data.store import SpectralStore

    _files(tmp_path / "files")
    report = ingest_files([tmp_path / "files"], "toy", tmp_path / "out.zarr", progress=False)
    assert SpectralStore.open(tmp_path / "out.zarr").meta["ingest_report"]["n_spectra_written"] == report.n_spectra_written


def test_resume_after_a_kill_at_the_end_of_an_ingest_stage(tmp_path):
    from specclip_core.data.ingest import ingest_files
    from specclip_core.rundir import STORE, RunDir
    from specclip_core.runner import run_spec
    from specclip_core.spec import validate_spec

    _files(tmp_path / "files")
    spec = validate_spec(
        {
            "name": "ingest-only",
            "run_dir": str(tmp_path / "run"),
            "stages": {"ingest": {"kind": "ingest", "modality": "toy", "paths": [str(tmp_path / "files")], "duplicates": "reject"}},
        }
    )
    partial = RunDir(tmp_path / "run").partial("ingest")
    ingest_files([tmp_path / "files"], "toy", partial / STORE, progress=False)  # killed before the rename
    (partial / ".ingest_report.json.x1y2z3.tmp").write_text("{")  # and in the middle of an atomic write
    manifests = run_spec(spec, resume=True, progress=False, log=lambda *_: None)
    assert manifests["ingest"]["summary"]["n_spectra_written"] == 4 and not partial.exists()
    assert not list((tmp_path / "run" / "ingest").rglob("*.tmp")), "no interrupted write is left in the finished stage"


@pytest.mark.parametrize("policy, kept", [("first", "a"), ("best_snr", "b"), ("reject", None)])
def test_duplicate_policies(tmp_path, policy, kept):
    from specclip_core.data.ingest import resolve_duplicates

    paths = [tmp_path / "a", tmp_path / "b", tmp_path / "c"]
    ids, files, snr = np.array(["toy-5-0", "toy-5-0", "toy-6-0"]), np.array([0, 1, 2]), np.array([1.0, 2.0, 1.0])
    rows, problems, duplicates = resolve_duplicates(ids, files, snr, paths, policy)
    assert [paths[files[row]].name for row in rows] == [n for n in "abc" if n in (kept, "c")]
    assert duplicates == [{"id": "toy-5-0", "files": [str(tmp_path / "a"), str(tmp_path / "b")], "kept": kept and str(tmp_path / kept)}]
    assert {p.check for p in problems} == {"duplicate-id"} and len(problems) == (2 if kept is None else 1)


def test_ids_that_are_not_integers_never_stop_the_duplicate_check(tmp_path):
    from specclip_core.data.ingest import resolve_duplicates

    rows, problems, duplicates = resolve_duplicates(np.array(["1.5", "1.5"]), np.array([0, 0]), np.zeros(2), [tmp_path / "a"], "first")
    assert rows.tolist() == [0] and [p.id for p in problems] == ["1.5"] and duplicates[0]["kept"] == str(tmp_path / "a")


def test_best_snr_keeps_the_copy_of_best_signal_to_noise_in_an_ingest(tmp_path):
    from specclip_core.data.ingest import ingest_files
    from specclip_toy import make_raw, write_file

    one, two = make_raw(1, 5), make_raw(1, 5)
    two.ivar[:] = 100 * one.ivar  # the better copy
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    paths = [write_file(tmp_path / "a" / "x.toy.csv", one, 0), write_file(tmp_path / "b" / "x.toy.csv", two, 0)]
    report = ingest_files(paths, "toy", tmp_path / "out.zarr", duplicates="best_snr", progress=False)
    assert report.duplicates == [{"id": "x", "files": [str(p) for p in paths], "kept": str(paths[1])}]
    assert report.n_spectra_written == 1
"""Bad inputs to ``simulate_paired`` and ``specclip data simulate``: each is refused with a message that
names the input and says what is wrong; never a traceback, never a store written from a wrong input,
never someone's files replaced."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("specclip_lamost")  # the simulated modality, its writer and readers

from specclip_core.api import SpecCLIPError  # noqa: E402
from specclip_core.testing import Tally, cli_main, deadline  # noqa: E402
from specclip_sim.paired import simulate_paired  # noqa: E402


def _cases(tmp_path, fake, fake_xp_store):
    """(case, keyword arguments of simulate_paired, words the error must hold)."""
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "fifo")
    damaged = tmp_path / "damaged.zarr"
    fake_xp_store(damaged)
    (damaged / "zarr.json").write_text((damaged / "zarr.json").read_text()[:40])
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    plain = tmp_path / "plain.txt"
    plain.write_text("not a store")
    return [
        ("missing like", {"like": str(tmp_path / "nowhere.zarr")}, ["nowhere.zarr", "neither a store nor a registered dataset"]),
        ("folder like", {"like": str(tmp_path / "folder")}, ["folder", "neither a store nor a registered dataset"]),
        ("FIFO like", {"like": str(tmp_path / "fifo")}, ["fifo", "neither a store nor a registered dataset"]),
        ("damaged store", {"like": str(damaged)}, ["damaged.zarr"]),
        ("a column the store lacks", {"like": str(fake), "columns": {"teff": "no_such_column", "logg": "logg", "feh": "fe_h", "a_k": "ak_targ"}}, ["no_such_column"]),
        ("limit 0", {"like": str(fake), "limit": 0}, ["limit must be at least 1, got 0"]),
        ("limit negative", {"like": str(fake), "limit": -3}, ["limit must be at least 1, got -3"]),
        ("chunk 0", {"like": str(fake), "chunk_size": 0}, ["chunk_size must be at least 1"]),
        ("output over someone's folder", {"like": str(fake), "output": mine}, [str(mine)]),
        ("overwrite someone's folder", {"like": str(fake), "output": mine, "overwrite": True}, [str(mine)]),
        ("output over a plain file", {"like": str(fake), "output": plain, "overwrite": True}, [str(plain)]),
    ], mine, plain


def test_every_bad_input_is_refused_with_a_message_naming_it(tmp_path, stub_emulator, fake_xp_store):
    fake = tmp_path / "fake-xp.zarr"
    fake_xp_store(fake)
    cases, mine, plain = _cases(tmp_path, fake, fake_xp_store)
    tally = Tally("simulate inputs")
    for case, options, words in cases:
        options = {"output": tmp_path / f"out-{len(tally.notes)}-{tally.tried}.zarr", **options}
        try:
            with deadline(60):
                simulate_paired("lamost_lrs", emulator=stub_emulator, workers=1, progress=False, **options)
        except SpecCLIPError as error:
            right = all(word in str(error) for word in words)
            tally.outcome(case, "right_reason" if right else "wrong_reason")
            if not right:
                tally.notes.append(f"{case}: {error}")
            continue
        except TimeoutError:
            tally.outcome(case, "hung")
            continue
        except Exception as error:  # noqa: BLE001 - counting crashes is the point
            tally.notes.append(f"{case}: {type(error).__name__}: {error}")
            tally.outcome(case, "crashed")
            continue
        tally.outcome(case, "silently_wrong")
    assert (mine / "notes.txt").read_text() == "my notes" and plain.read_text() == "not a store", "nobody's files are replaced"
    print(tally.summary())
    tally.assert_clean()


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--columns", "teff"], "--columns: expected INPUT=COLUMN pairs"),
        (["--columns", "teff=teff,=logg"], "--columns: expected INPUT=COLUMN pairs"),
        (["--limit", "-1"], "limit must be at least 1, got -1"),
    ],
)
def test_the_command_names_a_bad_argument(tmp_path, capsys, fake_xp_store, argv, words):
    fake = tmp_path / "fake-xp.zarr"
    fake_xp_store(fake)
    assert cli_main(["data", "simulate", "lamost_lrs", "--like", str(fake), "-o", str(tmp_path / "out.zarr"), "--quiet", *argv]) == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "out.zarr").exists()

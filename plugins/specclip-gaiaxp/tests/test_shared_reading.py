"""Several processes read one large XP table together (``Reader.read_share``, ``--workers``): the
readers' shares interleave to their spectra in order, and a store ingested by three workers equals the
store one process writes, a damaged row failing the file the same way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from specclip_core.api import SpectralStore
from specclip_core.testing import cli_main, threads_of_a_slow_consumer
from specclip_gaiaxp.continuous import GaiaXPContinuousReader
from specclip_gaiaxp.sampled import GaiaXPSampledReader

DATA = Path(__file__).parent / "data"
READERS = {"XP_SAMPLED_RAW_dr3int6.csv": GaiaXPSampledReader, "XP_CONTINUOUS_RAW.csv": GaiaXPContinuousReader}


def _table(path: Path, source: str, rows: int, damage_at: int | None = None) -> Path:
    head, *lines = (DATA / source).read_text().splitlines(keepends=True)
    with open(path, "w") as out:
        out.write(head)
        for i in range(rows):
            _, rest = lines[i % len(lines)].split(",", 1)
            line = f"{1_000_000 + i},{rest}"
            out.write(line[: len(line) // 2] + "\n" if i == damage_at else line)
    return path


@pytest.mark.parametrize("shares", [2, 3])
@pytest.mark.parametrize("source", sorted(READERS))
def test_the_shares_taken_in_turn_are_the_file_in_order(tmp_path, source, shares):
    reader, table = READERS[source](), _table(tmp_path / "big.csv", source, 11)
    whole = np.concatenate([piece.flux for piece in reader.read_chunks(table, 3)])
    parts = [list(reader.read_share(table, 3, share, shares)) for share in range(shares)]
    turns = [parts[block % shares][block // shares] for block in range(sum(map(len, parts)))]
    assert [len(piece) for piece in turns] == [3, 3, 3, 2]
    assert [sid for piece in turns for sid in piece.ids] == [str(1_000_000 + i) for i in range(11)]
    np.testing.assert_array_equal(np.concatenate([piece.flux for piece in turns]), whole)


def _ingest(table: Path, out: Path, workers: int) -> int:
    return cli_main(["data", "ingest", "gaia_xp", str(table), "-o", str(out), "--chunk", "3", "--workers", str(workers)])


def test_three_workers_ingest_the_store_one_process_writes(tmp_path):
    table = _table(tmp_path / "big.csv", "XP_SAMPLED_RAW_dr3int6.csv", 23)
    assert _ingest(table, tmp_path / "one.zarr", 1) == 0 and _ingest(table, tmp_path / "three.zarr", 3) == 0
    one, three = (SpectralStore.open(tmp_path / name).spectra("gaia_xp") for name in ("one.zarr", "three.zarr"))
    assert list(three.ids) == list(one.ids) == [str(1_000_000 + i) for i in range(23)]
    np.testing.assert_array_equal(three.flux, one.flux)
    np.testing.assert_array_equal(three.ivar, one.ivar)


def test_a_damaged_row_fails_the_file_for_workers_as_for_one_process(tmp_path, capsys):
    table = _table(tmp_path / "big.csv", "XP_SAMPLED_RAW_dr3int6.csv", 23, damage_at=16)
    outcomes = []
    for workers in (1, 2):
        status = _ingest(table, tmp_path / f"w{workers}.zarr", workers)
        outcomes.append((status, "line 18" in capsys.readouterr().err, (tmp_path / f"w{workers}.zarr").exists()))
    assert outcomes[0] == outcomes[1] and outcomes[0][1], outcomes


def test_the_consumer_gets_the_cpus_of_readers_that_have_finished(tmp_path):
    table = _table(tmp_path / "big.csv", "XP_SAMPLED_RAW_dr3int6.csv", 12)
    seen = threads_of_a_slow_consumer([table], "gaia_xp", chunk=2, workers=2, pause=1.0)
    assert [n for n, _ in seen] == [2] * 6
    # each reader has 3 blocks and room for 2 in its queue: both are busy at the first block; the
    # first has put its last block by the second, the other by the third (or already by the second:
    # taking its first block frees the room its last needs, and it may put it before the parent
    # counts the busy readers), while blocks of both still wait in their queues
    threads = [n for _, n in seen]
    assert threads[0] == 1 and threads[1] in (2, 3) and threads[2:] == [3] * 4, f"a reader that has read everything leaves its CPU: {threads}"

"""Two or three worker processes read one large XP table together (``Reader.read_share``): the spectra
come out in the file's order, equal to one process's, and a damaged row fails the file the same way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from specclip_core.api import get_modality
from specclip_core.data import stream as streams

DATA = Path(__file__).parent / "data"


def _table(path: Path, source: str, rows: int, damage_at: int | None = None) -> Path:
    head, *lines = (DATA / source).read_text().splitlines(keepends=True)
    with open(path, "w") as out:
        out.write(head)
        for i in range(rows):
            _, rest = lines[i % len(lines)].split(",", 1)
            line = f"{1_000_000 + i},{rest}"
            out.write(line[: len(line) // 2] + "\n" if i == damage_at else line)
    return path


def _read(path: Path, workers: int):
    stream = streams.SpectraStream([path], get_modality("gaia_xp"), chunk=10, progress=False, workers=workers)
    batches = list(stream)
    ids = np.concatenate([b.spectra.ids for b in batches]) if batches else np.array([])
    flux = np.concatenate([b.spectra.flux for b in batches]) if batches else np.zeros((0, 343))
    return ids, flux, [(reason, check) for _, _, reason, check in stream.problems], stream.failed, stream.n_read


@pytest.mark.parametrize("workers", [2, 3])
@pytest.mark.parametrize("source", ["XP_SAMPLED_RAW_dr3int6.csv", "XP_CONTINUOUS_RAW.csv"])
def test_workers_sharing_one_table_give_one_process_spectra_in_order(tmp_path, monkeypatch, workers, source):
    monkeypatch.setattr(streams, "SHARE_ROWS", 3)
    table = _table(tmp_path / "big.csv", source, 23)
    one, shared = _read(table, 1), _read(table, workers)
    assert list(shared[0]) == [str(1_000_000 + i) for i in range(23)] == list(one[0])
    np.testing.assert_array_equal(shared[1], one[1])
    assert shared[2] == one[2] == [] and shared[4] == one[4] == 23


def test_a_damaged_row_fails_the_shared_file_as_it_fails_one_process(tmp_path, monkeypatch):
    monkeypatch.setattr(streams, "SHARE_ROWS", 3)
    table = _table(tmp_path / "big.csv", "XP_SAMPLED_RAW_dr3int6.csv", 23, damage_at=16)
    one, shared = _read(table, 1), _read(table, 2)
    assert shared[2] == one[2] and len(one[2]) == 1 and "line 18" in one[2][0][0]
    assert shared[3] == one[3] == {0}, "rows were given before the damaged one: the consumer drops them"

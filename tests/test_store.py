import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from specclip_core.data.dataset import StoreDataset, iterate_batches
from specclip_core.data.store import SpectralStore
from specclip_core.errors import StoreError


def _toy_rows(n, seed):
    from specclip_toy import ToyModality, make_raw

    spectra = ToyModality().preprocess(make_raw(n, seed))
    return spectra, {"temp": spectra.meta["temp"], "kind": spectra.meta["kind"]}


def test_build_append_and_read_back(tmp_path):
    from specclip_toy import ToyModality

    path = tmp_path / "s.zarr"
    first, labels = _toy_rows(40, 1)
    with SpectralStore.build(path, {"toy": ToyModality()}, {"temp": "float", "kind": "str"}, {"source": "unit test"}) as store:
        store.append(first.ids, {"toy": first}, labels)
        assert not path.exists(), "a store being built must not appear under its final name"
    store = SpectralStore.open(path, mode="a")
    second, labels2 = _toy_rows(25, 2)
    assert store.append(second.ids, {"toy": second}, labels2) == 65
    store = SpectralStore.open(path)
    assert len(store) == 65 and store.meta["source"] == "unit test"
    rows = np.array([64, 3, 40, 3])
    got = store.read("toy", rows)
    both_flux = np.concatenate([first.flux, second.flux])
    np.testing.assert_array_equal(got["flux"], both_flux[rows])
    np.testing.assert_array_equal(store.labels(["kind"], rows)["kind"], np.concatenate([labels["kind"], labels2["kind"]])[rows])
    assert list(store.ids[:2]) == list(first.ids[:2])
    spectra = store.spectra("toy", slice(0, 5))
    assert spectra.stats.shape == (5, 2) and "temp" in spectra.meta


def test_append_rejects_bad_input_clearly(toy_store):
    store = SpectralStore.open(toy_store.path, mode="a")
    rows, labels = _toy_rows(3, 9)
    with pytest.raises(StoreError, match="label columns"):
        store.append(rows.ids, {"toy": rows}, {"temp": labels["temp"]})
    with pytest.raises(StoreError, match="already in the store"):
        store.append(toy_store.ids[:3], {"toy": rows}, labels)
    with pytest.raises(StoreError, match=r"toy.flux must have shape \(3, 64\)"):
        store.append(rows.ids, {"toy": {"flux": rows.flux[:, :10], "ivar": rows.ivar, "mask": rows.mask, "stats": rows.stats}}, labels)
    with pytest.raises(StoreError, match="read-only"):
        SpectralStore.open(toy_store.path).append(rows.ids, {"toy": rows}, labels)
    with pytest.raises(StoreError, match="no modality 'xp'"):
        toy_store.read("xp")
    with pytest.raises(StoreError, match="not a specclip store|no spectral store"):
        SpectralStore.open(toy_store.path / "toy")


WRITER = textwrap.dedent(
    """
    import os, signal, sys
    import zarr
    from specclip_core.data.store import SpectralStore
    from specclip_toy import ToyModality, make_raw

    spectra = ToyModality().preprocess(make_raw(300, 77))
    store = SpectralStore.open(sys.argv[1], mode="a")
    original = zarr.Array.__setitem__
    writes = []

    def write_then_die(self, key, value):
        original(self, key, value)
        writes.append(self.path)
        if len(writes) == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)

    zarr.Array.__setitem__ = write_then_die
    store.append(spectra.ids, {"toy": spectra}, {"temp": spectra.meta["temp"], "kind": spectra.meta["kind"]})
    """
)


@pytest.mark.parametrize("die_after_writes", [1, 4, 7])
def test_killed_writer_leaves_nothing_half_written(toy_store, tmp_path, die_after_writes):
    before_ids, before = toy_store.ids, toy_store.read("toy")
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    done = subprocess.run([sys.executable, str(script), str(toy_store.path), str(die_after_writes)], capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr
    reopened = SpectralStore.open(toy_store.path)
    assert len(reopened) == len(before_ids)
    np.testing.assert_array_equal(reopened.ids, before_ids)
    np.testing.assert_array_equal(reopened.read("toy")["flux"], before["flux"])
    writer = SpectralStore.open(toy_store.path, mode="a")
    rows, labels = _toy_rows(10, 123)
    assert writer.append(rows.ids, {"toy": rows}, labels) == len(before_ids) + 10
    for array in writer._arrays():
        assert array.shape[0] == len(before_ids) + 10


def test_interrupted_build_leaves_no_store(tmp_path):
    from specclip_toy import ToyModality

    path = tmp_path / "never.zarr"
    with pytest.raises(RuntimeError):
        with SpectralStore.build(path, {"toy": ToyModality()}) as store:
            rows, _ = _toy_rows(5, 3)
            store.append(rows.ids, {"toy": rows})
            raise RuntimeError("crash during ingest")
    assert not path.exists()
    assert not list(tmp_path.iterdir()), "the temporary store must be cleaned up"


def test_dataset_batches_are_keyed_by_modality(toy_store):
    data = StoreDataset(toy_store, split="train", labels=["temp"])
    lazy = StoreDataset(toy_store, split="train", labels=["temp"], in_memory=False)
    assert 0 < len(data) < len(toy_store)
    batch = data.__getitems__([0, 5, 2])
    other = lazy.__getitems__([0, 5, 2])
    assert set(batch) == {"ids", "rows", "toy", "labels"}
    assert batch["toy"]["flux"].shape == (3, 64) and batch["toy"]["mask"].dtype == torch.bool
    for key in ("flux", "ivar", "mask", "stats"):
        assert torch.equal(batch["toy"][key], other["toy"][key])
    assert torch.equal(batch["labels"]["temp"], other["labels"]["temp"])
    seen = np.concatenate([b["rows"].numpy() for b in iterate_batches(data, 50, shuffle=True, seed=1)])
    assert sorted(seen) == sorted(data.rows)
    shard0 = np.concatenate([b["rows"].numpy() for b in iterate_batches(data, 16, shuffle=True, rank=0, world_size=2)])
    shard1 = np.concatenate([b["rows"].numpy() for b in iterate_batches(data, 16, shuffle=True, rank=1, world_size=2)])
    assert len(shard0) == len(shard1) and not set(shard0) & set(shard1)


def test_overwrite_replaces_only_a_store_and_never_leaves_the_path_empty(tmp_path, monkeypatch):
    import specclip_core.data.store as store_module
    from specclip_core.data.store import SpectralStore
    from specclip_core.errors import StoreError
    from specclip_toy import ToyModality

    layout = {"toy": ToyModality()}
    (tmp_path / "someone").mkdir()
    (tmp_path / "someone" / "thesis.tex").write_text("precious")
    (tmp_path / "plain").write_text("precious")
    for name in ("someone", "plain"):
        with pytest.raises(StoreError, match="not a specclip store; refusing to replace it"):
            with SpectralStore.build(tmp_path / name, layout, overwrite=True):
                pass
    assert (tmp_path / "someone" / "thesis.tex").read_text() == "precious" and (tmp_path / "plain").read_text() == "precious"
    with SpectralStore.build(tmp_path / "s.zarr", layout, attrs={"n": 1}):
        pass
    swaps = []
    exchange = store_module._exchange
    monkeypatch.setattr(store_module, "_exchange", lambda a, b: swaps.append(b) or exchange(a, b))
    with SpectralStore.build(tmp_path / "s.zarr", layout, attrs={"n": 2}, overwrite=True):
        pass
    assert swaps == [tmp_path / "s.zarr"] and SpectralStore.open(tmp_path / "s.zarr").meta == {"n": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain", "s.zarr", "someone"]


def test_a_build_removes_what_a_killed_build_of_the_same_store_left(tmp_path):
    from specclip_toy import ToyModality

    path = tmp_path / "again.zarr"
    (tmp_path / ".again.zarr.partial-deadbeef").mkdir()  # a build killed with SIGKILL leaves its temporary store
    (tmp_path / ".other.zarr.partial-deadbeef").mkdir()  # another store's: not touched
    with SpectralStore.build(path, {"toy": ToyModality()}) as store:
        rows, _ = _toy_rows(5, 3)
        store.append(rows.ids, {"toy": rows})
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.zarr.partial-deadbeef", "again.zarr"]

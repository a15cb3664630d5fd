import hashlib

import numpy as np

from specclip_core.data.splits import split_fraction, split_of, split_rows


def test_split_is_the_documented_function_of_the_id():
    for object_id in [0, 42, 3444348060956026368, "948709160", "toy-1"]:
        u = int(hashlib.sha256(str(object_id).encode()).hexdigest()[:12], 16) / 16**12
        assert split_fraction(object_id) == u
        assert split_of(object_id) == ("train" if u < 0.81 else "val" if u < 0.90 else "test")


def test_int_and_str_ids_agree_and_calls_are_deterministic():
    ids = np.arange(5000)
    first = [split_of(i) for i in ids]
    assert first == [split_of(str(i)) for i in ids] == [split_of(i) for i in ids]


def test_fractions_match_the_design():
    ids = np.arange(20000)
    counts = {s: len(split_rows(ids, s)) / len(ids) for s in ("train", "val", "test")}
    assert abs(counts["train"] - 0.81) < 0.01 and abs(counts["val"] - 0.09) < 0.01 and abs(counts["test"] - 0.10) < 0.01
    together = np.sort(np.concatenate([split_rows(ids, s) for s in ("train", "val", "test")]))
    assert np.array_equal(together, np.arange(len(ids)))

"""Row ids compared as text: integers, floats and numeric text give the same id; long ids never pass through a float."""

import numpy as np
import pytest

from specclip_core.data.ids import duplicated, lookup, normalise_ids
from specclip_core.errors import SpecCLIPError


def test_ids_are_normalised_without_passing_long_ids_through_a_float():
    assert normalise_ids(np.array([948709160, 7]), "t").tolist() == ["948709160", "7"]
    assert normalise_ids(np.array([948709160.0, np.nan]), "t").tolist() == ["948709160", ""]
    assert normalise_ids(np.array([" 3444348060956026368 ", "948709160.0", "1.2e3", "2M0001+56", "nan", ""]), "t").tolist() == [
        "3444348060956026368", "948709160", "1200", "2M0001+56", "", "",
    ]
    assert normalise_ids(np.array(["3444348060956026368.000"]), "t").tolist() == ["3444348060956026368"]
    with pytest.raises(SpecCLIPError, match="t: id .* 2\\*\\*53"):
        normalise_ids(np.array([3444348060956026368.0]), "t")
    with pytest.raises(SpecCLIPError, match="beyond 2\\*\\*53"):
        normalise_ids(np.array(["3.444348060956026e+18"]), "t")
    with pytest.raises(SpecCLIPError, match="'12.5' is not an integer"):
        normalise_ids(np.array(["12.5"]), "t")


def test_lookup_finds_unique_ids_only():
    keys = np.array(["a", "b", "b", "", "c"])
    assert lookup(keys, np.array(["c", "b", "a", "", "z"])).tolist() == [4, -1, 0, -1, -1]
    assert lookup(np.array([], dtype=str), np.array(["a"])).tolist() == [-1]
    assert duplicated(np.array(["x", "y", "x", "", ""])).tolist() == ["x"]

"""Row ids as text, the same whether a table holds them as integers, floats or text.

Ids are compared as strings. A table may hold an integer id as an int64 column, as a float column
(a column with a missing value), or as text written ``"948709160.0"``; all of these mean
``"948709160"``. A float cannot hold every integer beyond 2**53 (a 19-digit id comes back with other
digits), so such a value is refused rather than matched to the wrong object.
"""

from __future__ import annotations

import decimal

import numpy as np

from specclip_core.errors import SpecCLIPError

EXACT_FLOAT_LIMIT = 2**53
"""Integers beyond this are not all representable in float64."""


def _from_text(text: str, where: str) -> str:
    """An id written as text that is not plain digits: a number becomes its integer digits."""
    try:
        number = decimal.Decimal(text)
    except decimal.InvalidOperation:
        return text  # not a number: a name-like id, kept as written
    if number.is_nan():
        return ""
    if not number.is_finite() or number != number.to_integral_value():
        raise SpecCLIPError(f"{where}: id {text!r} is not an integer")
    if "e" in text.lower() and abs(number) >= EXACT_FLOAT_LIMIT:
        raise SpecCLIPError(
            f"{where}: id {text!r} is written as a floating-point number beyond 2**53, so its last digits may be lost; "
            "write ids as integers or text"
        )
    return str(int(number))


def normalise_ids(values: np.ndarray, where: str) -> np.ndarray:
    """``values`` as id strings ("" = no id): integers as their digits, integral floats below 2**53
    as the same digits, text stripped, and numeric text (``"12.0"``, ``"1.2e1"``) as its integer
    digits. A non-integral number, or a float beyond 2**53, is an error naming ``where``."""
    array = np.asarray(values).reshape(-1)
    if array.dtype.kind in "iu":
        return array.astype(str)
    if array.dtype.kind == "f":
        finite = np.isfinite(array)
        bad = finite & ((array != np.round(array)) | (np.abs(array) >= EXACT_FLOAT_LIMIT))
        if bad.any():
            raise SpecCLIPError(
                f"{where}: id {array[bad][0]!r} is a float that is not an integer below 2**53 (a float64 cannot hold a longer id exactly); "
                "give ids as integers or text"
            )
        return np.where(finite, np.where(finite, array, 0).astype(np.int64).astype(str), "")
    text = np.char.strip(array.astype(str))
    odd = np.flatnonzero(~np.char.isdigit(text) & (text != ""))
    if odd.size:
        text = text.astype(object)
        for i in odd:
            text[i] = _from_text(text[i], where)
        text = text.astype(str)
    return text


def lookup(keys: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """For each of ``wanted``, the position of its one occurrence in ``keys``; -1 where it is empty,
    absent, or occurs more than once (ambiguous)."""
    unique, first, counts = np.unique(np.asarray(keys, dtype=str), return_index=True, return_counts=True)
    wanted = np.asarray(wanted, dtype=str)
    if not len(unique):
        return np.full(len(wanted), -1, dtype=np.int64)
    position = np.clip(np.searchsorted(unique, wanted), 0, len(unique) - 1)
    found = (unique[position] == wanted) & (counts[position] == 1) & (wanted != "")
    return np.where(found, first[position], -1).astype(np.int64)


def duplicated(keys: np.ndarray) -> np.ndarray:
    """The non-empty ids that occur more than once in ``keys``, sorted."""
    unique, counts = np.unique(np.asarray(keys, dtype=str), return_counts=True)
    return unique[(counts > 1) & (unique != "")]

"""Which rows of several stores are the same object: by equal ids, or through a cross-match table.

The policy on duplicates, the same with or without a table: an id that is not unique (twice in one
store, or paired with different partners by different rows of the table) pairs nothing, and is
listed; a row of the table identical to an earlier one is used once, and counted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from specclip_core.data.ids import duplicated, lookup, normalise_ids
from specclip_core.data.ingest import read_label_table
from specclip_core.errors import SpecCLIPError

LISTED = 100
"""At most this many ids are listed per kind of problem (the counts are complete)."""


@dataclass
class CrossMatch:
    """A cross-match table: per store, the id its row has on each line of the table ("" = none)."""

    source: str
    columns: dict[str, str]
    ids: dict[str, np.ndarray]

    @classmethod
    def read(cls, path: str | Path, columns: Mapping[str, str]) -> CrossMatch:
        """Read the CSV at ``path``; ``columns`` maps store name -> the column holding that store's id."""
        path = str(path)
        if not Path(path).is_file():
            raise SpecCLIPError(f"{path}: no such cross-match table")
        table = read_label_table(path, text_columns=columns.values())
        missing = {store: column for store, column in columns.items() if column not in table}
        if missing:
            named = ", ".join(f"{column!r} (ids of store {store!r})" for store, column in missing.items())
            raise SpecCLIPError(f"{path}: no column {named}; the table's columns are {list(table)}")
        ids = {store: normalise_ids(table[column], f"{path}: column {column!r}") for store, column in columns.items()}
        return cls(path, dict(columns), ids)


@dataclass
class Matching:
    """Matched rows (per store, the row of each joined object) and what did not match, and why."""

    rows: dict[str, np.ndarray]
    duplicated_ids: dict[str, list[str]]
    n_duplicated_ids: dict[str, int]
    crossmatch: dict[str, Any] | None = None  # the cross-match table's counts (None without one)


def _listed(values: np.ndarray) -> list[str]:
    return [str(v) for v in values[:LISTED]]


def match_equal_ids(keys: Mapping[str, np.ndarray], id_from: str) -> Matching:
    """Rows whose ids are equal in every store, in the order of ``id_from``'s rows."""
    doubled = {name: duplicated(k) for name, k in keys.items()}
    reference = keys[id_from]
    rows = {name: lookup(k, reference) for name, k in keys.items()}
    keep = np.logical_and.reduce([r >= 0 for r in rows.values()])
    return Matching(
        {name: r[keep] for name, r in rows.items()},
        {name: _listed(d) for name, d in doubled.items()},
        {name: len(d) for name, d in doubled.items()},
    )


def match_table(keys: Mapping[str, np.ndarray], crossmatch: CrossMatch, id_from: str) -> Matching:
    """Rows paired by the lines of a cross-match table, in the order of ``id_from``'s rows."""
    names = list(keys)
    table = np.stack([crossmatch.ids[name] for name in names], axis=1)
    complete = (table != "").all(axis=1)
    lines = table[complete]
    _, first = np.unique(np.array(["\x1f".join(line) for line in lines], dtype=str), return_index=True)
    lines = lines[np.sort(first)]  # each distinct line once, in table order
    doubled = {name: duplicated(k) for name, k in keys.items()}
    ambiguous, clear = {}, np.ones(len(lines), bool)
    for i, name in enumerate(names):
        bad = np.union1d(duplicated(lines[:, i]), doubled[name])
        ambiguous[name] = _listed(np.intersect1d(bad, lines[:, i]))
        clear &= ~np.isin(lines[:, i], bad)
    rows = {name: lookup(keys[name], lines[clear, i]) for i, name in enumerate(names)}
    found = np.stack([rows[name] >= 0 for name in names], axis=1)
    keep = found.all(axis=1)
    order = np.argsort(rows[id_from][keep], kind="stable")
    counts = {
        "table": crossmatch.source,
        "columns": dict(crossmatch.columns),
        "rows_read": int(len(table)),
        "rows_incomplete": int((~complete).sum()),
        "rows_repeated": int(complete.sum() - len(lines)),
        "rows_ambiguous": int((~clear).sum()),
        "ambiguous_ids": ambiguous,
        "rows_unmatched": int((~keep).sum()),
        "ids_not_in_store": {name: int((~found[:, i]).sum()) for i, name in enumerate(names)},
        "rows_matched": int(keep.sum()),
    }
    return Matching(
        {name: r[keep][order] for name, r in rows.items()},
        {name: _listed(d) for name, d in doubled.items()},
        {name: len(d) for name, d in doubled.items()},
        counts,
    )

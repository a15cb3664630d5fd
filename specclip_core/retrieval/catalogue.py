"""The embedding catalogue: one zarr 3 group holding one modality's embeddings by one stage of a run.

Layout::

    <catalogue>/ids              (N,) str       the spectrum ids
    <catalogue>/embedding        (N, W) float32 the embeddings
    <catalogue>/source           (N,) str       the file or store each row came from
    <catalogue>/labels/<column>  (N,)           label columns of the input stores (when every input is a store)

The root's attributes hold ``specclip_catalogue`` (the format), ``n_rows`` (the commit record, as in a
spectral store: readers never look past it, so a writer killed mid-append leaves what was committed)
and ``manifest``: the run, stage, modality, part, width, ``prefix`` (when only the first ``width``
dimensions of an ordered embedding are kept), count and every input with its checksum.
A catalogue being built (:mod:`specclip_core.retrieval.embed`) also has ``chunk`` and ``file``
arrays (the input chunk and file of each row) and ``next_chunk``; the finished one has neither.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from specclip_core.errors import CatalogueError

FORMAT_VERSION = 1
ROW_CHUNK = 65536
_CODEC = BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")
_LABEL_DTYPES = {"float": "float64", "int": "int64", "str": str}
_BUILDING = ("chunk", "file")


def _as_str(values: Any) -> np.ndarray:
    return np.asarray(values).astype(object).astype(str)


class Catalogue:
    """Read (and, while building, append to) an embedding catalogue."""

    def __init__(self, path: Path, group: zarr.Group):
        self.path, self._group = path, group
        if group.attrs.get("specclip_catalogue") != FORMAT_VERSION:
            raise CatalogueError(f"{path}: not a specclip embedding catalogue (missing or unknown 'specclip_catalogue' attribute)")

    @classmethod
    def open(cls, path: str | Path, mode: str = "r") -> Catalogue:
        """Open a catalogue (``mode="a"`` to append to one being built)."""
        path = Path(path)
        if not (path / "zarr.json").is_file():
            raise CatalogueError(f"{path}: no embedding catalogue here (expected a zarr group made by 'specclip embed')")
        try:
            group = zarr.open_group(path, mode="r+" if mode == "a" else "r")
        except (ValueError, KeyError, TypeError) as error:
            raise CatalogueError(f"{path}: unreadable catalogue ({type(error).__name__}: {error})") from None
        return cls(path, group)

    @classmethod
    def create(
        cls, path: str | Path, width: int, label_columns: Mapping[str, str], manifest: Mapping[str, Any], building: bool
    ) -> Catalogue:
        """An empty catalogue of ``width``-wide embeddings (``building``: with the arrays resume needs)."""
        path = Path(path)
        group = zarr.open_group(path, mode="w-")
        group.create_array("ids", shape=(0,), chunks=(ROW_CHUNK,), dtype=str)
        group.create_array("source", shape=(0,), chunks=(ROW_CHUNK,), dtype=str)
        rows = int(np.clip(2 * 1024**2 // (4 * max(width, 1)), 256, ROW_CHUNK))
        group.create_array("embedding", shape=(0, width), chunks=(rows, width), dtype="float32", compressors=_CODEC)
        labels = group.create_group("labels")
        for column, kind in label_columns.items():
            labels.create_array(column, shape=(0,), chunks=(ROW_CHUNK,), dtype=_LABEL_DTYPES[kind])
        if building:
            for name in _BUILDING:
                group.create_array(name, shape=(0,), chunks=(ROW_CHUNK,), dtype="int64")
        group.attrs.update(
            {"specclip_catalogue": FORMAT_VERSION, "n_rows": 0, "label_columns": dict(label_columns), "manifest": dict(manifest)}
            | ({"next_chunk": 0} if building else {})
        )
        return cls(path, group)

    def __len__(self) -> int:
        return int(self._group.attrs["n_rows"])

    @property
    def manifest(self) -> dict[str, Any]:
        return dict(self._group.attrs["manifest"])

    @property
    def width(self) -> int:
        return int(self._group["embedding"].shape[1])

    @property
    def modality(self) -> str:
        return str(self.manifest["modality"])

    @property
    def label_columns(self) -> dict[str, str]:
        return dict(self._group.attrs["label_columns"])

    @property
    def next_chunk(self) -> int:
        """The first input chunk not yet committed (a catalogue being built)."""
        return int(self._group.attrs.get("next_chunk", 0))

    @property
    def ids(self) -> np.ndarray:
        return _as_str(self._group["ids"][: len(self)])

    @property
    def sources(self) -> np.ndarray:
        return _as_str(self._group["source"][: len(self)])

    def _take(self, name: str, rows: slice | np.ndarray | None) -> np.ndarray:
        """Array ``name`` at ``rows`` (all committed rows by default), reading only the chunks they touch."""
        array = self._group[name]
        if rows is None:
            return np.asarray(array[: len(self)])
        if isinstance(rows, slice):
            return np.asarray(array[slice(*rows.indices(len(self)))])
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise CatalogueError(f"{self.path}: row out of range 0..{len(self) - 1}")
        if not rows.size:
            return np.zeros((0, *array.shape[1:]), dtype=array.dtype)
        unique, inverse = np.unique(rows, return_inverse=True)
        return np.asarray(array.oindex[unique])[inverse]

    def embeddings(self, rows: slice | np.ndarray | None = None) -> np.ndarray:
        """The embeddings at ``rows`` (all by default), float32."""
        return self._take("embedding", rows).astype(np.float32, copy=False)

    def ids_at(self, rows: np.ndarray) -> np.ndarray:
        return _as_str(self._take("ids", rows))

    def sources_at(self, rows: np.ndarray) -> np.ndarray:
        return _as_str(self._take("source", rows))

    def labels(self, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Label columns (all rows, or ``rows``)."""
        out = {}
        for column, kind in self.label_columns.items():
            values = self._take(f"labels/{column}", rows)
            out[column] = _as_str(values) if kind == "str" else values
        return out

    def column(self, name: str) -> np.ndarray:
        """A row column of a catalogue being built (``chunk`` or ``file``)."""
        return np.asarray(self._group[name][: len(self)])

    def rows_of(self, ids: list[str]) -> dict[str, np.ndarray]:
        """Id -> the rows holding it; an error naming the ids the catalogue lacks."""
        known = self.ids
        found = {sid: np.flatnonzero(known == sid) for sid in ids}
        missing = [sid for sid, rows in found.items() if rows.size == 0]
        if missing:
            raise CatalogueError(
                f"{self.path}: no row with id {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''} "
                f"(it holds {len(known)} ids, e.g. {', '.join(known[:3])})"
            )
        return found

    def trim(self) -> None:
        """Drop whatever a killed writer wrote past the commit record."""
        n = len(self)
        for array in self._arrays():
            if array.shape[0] != n:
                array.resize((n, *array.shape[1:]))

    def _arrays(self):
        names = ["ids", "source", "embedding"] + [f"labels/{c}" for c in self.label_columns]
        return [self._group[name] for name in names + [n for n in _BUILDING if n in self._group]]

    def append(self, columns: Mapping[str, np.ndarray], next_chunk: int | None = None) -> None:
        """Append rows (``ids``, ``source``, ``embedding``, ``labels/<c>``, and while building ``chunk``
        and ``file``), then commit them by rewriting ``n_rows`` (and ``next_chunk``)."""
        n, k = len(self), len(columns["ids"])
        for array in self._arrays():
            name = array.path
            values = columns[name]
            array.resize((n + k, *array.shape[1:]))
            if k:
                array[n : n + k] = values
        self._group.attrs.update({"n_rows": n + k} | ({} if next_chunk is None else {"next_chunk": next_chunk}))

    def rows(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """Every array's rows ``start:stop`` (keys as :meth:`append` takes them)."""
        return {array.path: np.asarray(array[start:stop]) for array in self._arrays()}

    def set_manifest(self, manifest: Mapping[str, Any]) -> None:
        self._group.attrs["manifest"] = dict(manifest)


class CatalogueSet:
    """The shards of one catalogue (the same modality, stage, part, width and prefix) read as one: rows of
    the first shard, then of the second, ... ``path`` names them all (for messages)."""

    def __init__(self, shards: list[Catalogue]):
        first = shards[0]
        for other in shards[1:]:
            for key in ("modality", "stage_key", "part", "width", "prefix"):
                if other.manifest.get(key) != first.manifest.get(key):
                    raise CatalogueError(
                        f"{other.path}: {key} {other.manifest.get(key)!r} differs from {first.path}'s {first.manifest.get(key)!r}; "
                        "the shards of one index must hold one embedding"
                    )
        self.shards = shards
        self.offsets = np.cumsum([0] + [len(shard) for shard in shards])
        self.path = " + ".join(str(shard.path) for shard in shards)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def manifest(self) -> dict[str, Any]:
        """The first shard's manifest (what every shard shares: run, stage, modality, part, width)."""
        return self.shards[0].manifest

    @property
    def width(self) -> int:
        return self.shards[0].width

    @property
    def modality(self) -> str:
        return self.shards[0].modality

    @property
    def label_columns(self) -> dict[str, str]:
        """The label columns every shard has."""
        first = self.shards[0].label_columns
        return {c: kind for c, kind in first.items() if all(shard.label_columns.get(c) == kind for shard in self.shards[1:])}

    @property
    def ids(self) -> np.ndarray:
        return np.concatenate([shard.ids for shard in self.shards])

    @property
    def sources(self) -> np.ndarray:
        return np.concatenate([shard.sources for shard in self.shards])

    def _by_shard(self, rows: slice | np.ndarray | None):
        rows = np.arange(len(self))[rows] if rows is None or isinstance(rows, slice) else np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise CatalogueError(f"{self.path}: row out of range 0..{len(self) - 1}")
        shard = np.searchsorted(self.offsets, rows, side="right") - 1
        return rows, shard

    def _gather(self, rows: slice | np.ndarray | None, read) -> list[tuple[np.ndarray, np.ndarray]]:
        """(positions in ``rows``, what ``read(shard, local rows)`` gives) per shard the rows touch."""
        rows, shard = self._by_shard(rows)
        return [
            (np.flatnonzero(shard == number), read(self.shards[number], rows[shard == number] - self.offsets[number]))
            for number in np.unique(shard)
        ]

    def _joined(self, rows, read, shape: tuple, dtype) -> np.ndarray:
        n = len(self._by_shard(rows)[0])
        out = np.empty((n, *shape), dtype=dtype)
        for where, values in self._gather(rows, read):
            out[where] = values
        return out

    def embeddings(self, rows: slice | np.ndarray | None = None) -> np.ndarray:
        return self._joined(rows, Catalogue.embeddings, (self.width,), np.float32)

    def ids_at(self, rows: np.ndarray) -> np.ndarray:
        return self._joined(rows, Catalogue.ids_at, (), object).astype(str)

    def sources_at(self, rows: np.ndarray) -> np.ndarray:
        return self._joined(rows, Catalogue.sources_at, (), object).astype(str)

    def labels(self, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        columns = self.label_columns
        parts = self._gather(rows, lambda shard, local: shard.labels(local))
        out = {}
        for column, kind in columns.items():
            values = np.empty(
                sum(len(where) for where, _ in parts), dtype=object if kind == "str" else np.float64 if kind == "float" else np.int64
            )
            for where, labels in parts:
                values[where] = labels[column]
            out[column] = values.astype(str) if kind == "str" else values
        return out

    rows_of = Catalogue.rows_of


def is_catalogue(path: str | Path) -> bool:
    """Whether ``path`` holds an embedding catalogue (a zarr group with the ``specclip_catalogue`` attribute)."""
    try:
        return "specclip_catalogue" in json.loads((Path(path) / "zarr.json").read_text()).get("attributes", {})
    except (OSError, ValueError, AttributeError):
        return False


def manifest_digest(manifest: Mapping[str, Any]) -> str:
    """A short checksum of a manifest (an index card names the catalogue it was built from by it)."""
    import hashlib

    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]

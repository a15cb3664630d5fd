"""The spectral store: one zarr 3 group per dataset, rows = spectra (or objects seen by several modalities).

Layout::

    <store>/ids                 (N,) str          unique row id (e.g. a survey's object id)
    <store>/labels/<column>     (N,) float64|int64|str  one array per label column
    <store>/<modality>/wavelength  (L,) float64   the modality's model input grid
    <store>/<modality>/flux     (N, L) float32    preprocessed flux
    <store>/<modality>/ivar     (N, L) float32
    <store>/<modality>/mask     (N, L) bool       True = bad pixel (every pixel: the modality did not observe this row)
    <store>/<modality>/stats    (N, k) float32    per-spectrum statistics kept by preprocessing

Atomicity: the root attribute ``n_rows`` is the commit record. An append resizes and fills every
array, then rewrites ``n_rows`` (zarr writes each metadata document atomically). Readers never look
past ``n_rows``, so a writer killed mid-append leaves the store exactly as it was; the next writer
trims the uncommitted tail. A new store is built under a temporary name and renamed when complete;
one that replaces a store swaps with it in one atomic exchange where the system has one (Linux
renameat2), so the path never reads as empty. Only a specclip store is ever replaced.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from specclip_core.errors import StoreError
from specclip_core.interfaces import SIMULATED, Spectra

FORMAT_VERSION = 1
_FLOAT_CODEC = BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")
_CHUNK_BYTES = 2 * 1024**2
_VECTOR_CHUNK = 65536
_LABEL_DTYPES = {"float": "float64", "int": "int64", "str": str}


@dataclass(frozen=True)
class ModalityLayout:
    """What a store holds for one modality: the grid and the names of the per-spectrum statistics."""

    wavelength: np.ndarray
    stats_names: tuple[str, ...] = ("mean", "std")

    @classmethod
    def of(cls, modality: Any) -> ModalityLayout:
        return cls(np.asarray(modality.wavelength, dtype=np.float64), tuple(modality.stats_names))


def _as_str(values: np.ndarray) -> np.ndarray:
    """Fixed-width numpy strings from zarr's variable-length string arrays."""
    return np.asarray(values).astype(object).astype(str)


def _rows_per_chunk(n_pixels: int) -> int:
    return int(np.clip(_CHUNK_BYTES // (4 * max(n_pixels, 1)), 256, 8192))


class SpectralStore:
    """Read and append preprocessed spectra, ids and labels. Open with :meth:`open` or build with :meth:`build`."""

    def __init__(self, path: Path, group: zarr.Group, writable: bool):
        self.path, self._group, self._writable = path, group, writable
        attrs = group.attrs.asdict()
        if attrs.get("specclip_store") != FORMAT_VERSION:
            raise StoreError(f"{path}: not a specclip store (missing or unknown 'specclip_store' attribute)")
        self._modalities: dict[str, dict[str, Any]] = attrs["modalities"]
        self._label_columns: dict[str, str] = attrs["label_columns"]

    # -- opening and creating ---------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, mode: str = "r") -> SpectralStore:
        """Open an existing store; ``mode="a"`` to append (trims any uncommitted tail first)."""
        path = Path(path)
        if not (path / "zarr.json").is_file():
            raise StoreError(f"{path}: no spectral store here (expected a zarr group with zarr.json)")
        try:
            group = zarr.open_group(path, mode="r+" if mode == "a" else "r")
        except (ValueError, KeyError, TypeError) as error:  # a damaged zarr.json: zarr raises JSONDecodeError (a ValueError) and others
            raise StoreError(f"{path}: damaged store, cannot open it ({type(error).__name__}: {error}); rebuild it") from None
        store = cls(path, group, writable=mode == "a")
        if mode == "a":
            with store._locked():
                store._trim_uncommitted()
        return store

    @classmethod
    def create(
        cls,
        path: str | Path,
        modalities: Mapping[str, ModalityLayout | Any],
        label_columns: Mapping[str, str] | None = None,
        attrs: Mapping[str, Any] | None = None,
    ) -> SpectralStore:
        """Create an empty store at ``path`` (atomically: built aside, then renamed into place)."""
        path = Path(path)
        if path.exists():
            raise StoreError(f"{path}: already exists; remove it or open it with mode='a' to append")
        for stale in path.parent.glob(f".{path.name}.partial-*"):  # left by a build of this store that was killed
            shutil.rmtree(stale, ignore_errors=True)
        partial = path.with_name(f".{path.name}.partial-{uuid.uuid4().hex[:8]}")
        try:
            cls._initialise(partial, modalities, label_columns or {}, attrs or {})
            os.replace(partial, path)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        return cls.open(path, mode="a")

    @classmethod
    @contextlib.contextmanager
    def build(
        cls,
        path: str | Path,
        modalities: Mapping[str, ModalityLayout | Any],
        label_columns: Mapping[str, str] | None = None,
        attrs: Mapping[str, Any] | None = None,
        overwrite: bool = False,
    ) -> Iterator[SpectralStore]:
        """Write a whole new store: appends go to a hidden temporary store that replaces ``path`` only
        when the block ends without error. An interrupted build leaves ``path`` untouched."""
        path = Path(path)
        if os.path.lexists(path) and not overwrite:
            raise StoreError(f"{path}: already exists (pass overwrite=True to replace it)")
        if os.path.lexists(path) and not is_store(path):
            kind = "a directory" if path.is_dir() else "a file"
            raise StoreError(f"{path}: exists and is {kind}, not a specclip store; refusing to replace it (choose another path)")
        for stale in path.parent.glob(f".{path.name}.partial-*"):  # left by a build of this store that was killed
            shutil.rmtree(stale, ignore_errors=True)
        partial = path.with_name(f".{path.name}.partial-{uuid.uuid4().hex[:8]}")
        try:
            cls._initialise(partial, modalities, label_columns or {}, attrs or {})
            yield cls.open(partial, mode="a")
            replace_directory(partial, path)
        finally:
            shutil.rmtree(partial, ignore_errors=True)

    @staticmethod
    def _initialise(path: Path, modalities: Mapping[str, Any], label_columns: Mapping[str, str], attrs: Mapping[str, Any]) -> None:
        for column, kind in label_columns.items():
            if kind not in _LABEL_DTYPES:
                raise StoreError(f"label column {column!r}: kind must be one of {list(_LABEL_DTYPES)}, got {kind!r}")
        group = zarr.open_group(path, mode="w-")
        group.create_array("ids", shape=(0,), chunks=(_VECTOR_CHUNK,), dtype=str)
        labels = group.create_group("labels")
        for column, kind in label_columns.items():
            labels.create_array(column, shape=(0,), chunks=(_VECTOR_CHUNK,), dtype=_LABEL_DTYPES[kind])
        described = {}
        for name, layout in modalities.items():
            layout = layout if isinstance(layout, ModalityLayout) else ModalityLayout.of(layout)
            n_pixels, n_stats = len(layout.wavelength), len(layout.stats_names)
            rows = _rows_per_chunk(n_pixels)
            sub = group.create_group(name)
            sub.create_array("wavelength", data=layout.wavelength)
            for array in ("flux", "ivar"):
                sub.create_array(array, shape=(0, n_pixels), chunks=(rows, n_pixels), dtype="float32", compressors=_FLOAT_CODEC)
            sub.create_array("mask", shape=(0, n_pixels), chunks=(rows, n_pixels), dtype="bool")
            sub.create_array("stats", shape=(0, n_stats), chunks=(rows, n_stats), dtype="float32")
            described[name] = {"stats_names": list(layout.stats_names), "n_pixels": n_pixels}
        group.attrs.update(
            {
                "specclip_store": FORMAT_VERSION,
                "n_rows": 0,
                "revision": uuid.uuid4().hex,
                "modalities": described,
                "label_columns": dict(label_columns),
                "meta": dict(attrs),
            }
        )

    # -- properties ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._group.attrs["n_rows"])

    @property
    def n_rows(self) -> int:
        return len(self)

    @property
    def modalities(self) -> list[str]:
        return list(self._modalities)

    @property
    def label_columns(self) -> dict[str, str]:
        return dict(self._label_columns)

    @property
    def meta(self) -> dict[str, Any]:
        return dict(self._group.attrs.get("meta", {}))

    @property
    def simulated_modalities(self) -> list[str]:
        """Modalities whose spectra are simulated (``meta["simulated_modalities"]``, set by whoever made them)."""
        return list(self.meta.get("simulated_modalities", []))

    def simulated_rows(self, modality: str, rows: np.ndarray | slice | None = None) -> np.ndarray:
        """True where a row's ``modality`` spectrum is simulated: the 0/1 label column
        ``simulated_<modality>``, else ``simulated`` in a store of one modality, else every row when
        the modality is one of :attr:`simulated_modalities`."""
        self._modality_group(modality)
        for column in (f"{SIMULATED}_{modality}", SIMULATED if len(self._modalities) == 1 else None):
            if column in self._label_columns:
                return self.labels([column], rows)[column] == 1
        n = len(np.arange(len(self))[self._rows(rows)])
        return np.full(n, modality in self.simulated_modalities)

    @property
    def fingerprint(self) -> str:
        """Changes whenever the committed content changes (used to decide whether a stage can be reused)."""
        return f"{self._group.attrs['revision']}:{len(self)}"

    def wavelength(self, modality: str) -> np.ndarray:
        return self._modality_group(modality)["wavelength"][:]

    def stats_names(self, modality: str) -> tuple[str, ...]:
        self._modality_group(modality)
        return tuple(self._modalities[modality]["stats_names"])

    @property
    def ids(self) -> np.ndarray:
        return _as_str(self._group["ids"][: len(self)])

    # -- reading -------------------------------------------------------------------------------------
    def _modality_group(self, modality: str) -> zarr.Group:
        if modality not in self._modalities:
            raise StoreError(f"{self.path}: no modality {modality!r} in this store; it holds {self.modalities}")
        return self._group[modality]

    def _rows(self, rows: np.ndarray | slice | None) -> np.ndarray | slice:
        n = len(self)
        if rows is None:
            return slice(0, n)
        if isinstance(rows, slice):
            start, stop, step = rows.indices(n)
            return slice(start, stop, step)
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= n):
            raise StoreError(f"{self.path}: row index out of range 0..{n - 1}")
        return rows

    @staticmethod
    def _take(array: zarr.Array, rows: np.ndarray | slice) -> np.ndarray:
        if isinstance(rows, slice):
            return np.asarray(array[rows])
        if rows.size == 0:
            return np.zeros((0, *array.shape[1:]), dtype=array.dtype)
        order = np.argsort(rows, kind="stable")
        sorted_rows = rows[order]
        unique, inverse = np.unique(sorted_rows, return_inverse=True)
        lo, hi = int(unique[0]), int(unique[-1]) + 1
        if hi - lo <= 4 * unique.size:
            block = np.asarray(array[lo:hi])[unique - lo]
        else:
            block = np.asarray(array.oindex[unique])
        out = np.empty((rows.size, *array.shape[1:]), dtype=block.dtype)
        out[order] = block[inverse]
        return out

    def read(self, modality: str, rows: np.ndarray | slice | None = None) -> dict[str, np.ndarray]:
        """``flux``, ``ivar``, ``mask`` and ``stats`` of ``modality`` at ``rows`` (all committed rows by default)."""
        group, rows = self._modality_group(modality), self._rows(rows)
        return {name: self._take(group[name], rows) for name in ("flux", "ivar", "mask", "stats")}

    def observed(self, modality: str, rows: np.ndarray | slice | None = None) -> np.ndarray:
        """Per row, whether it holds a spectrum of ``modality``: at least one pixel not masked. A row
        whose every pixel is masked stands for a star this modality did not observe (see
        :func:`specclip_core.align.objectives.observed`)."""
        group, rows = self._modality_group(modality), self._rows(rows)
        mask = group["mask"]
        if isinstance(rows, slice):
            rows = np.arange(len(self))[rows]
        step = max(1, _CHUNK_BYTES // max(mask.shape[1], 1))
        return np.concatenate([~self._take(mask, rows[i : i + step]).all(axis=1) for i in range(0, len(rows), step)] or [np.zeros(0, bool)])

    def spectra(self, modality: str, rows: np.ndarray | slice | None = None, labels: bool = True) -> Spectra:
        """The rows as a :class:`Spectra` (labels as ``meta`` columns)."""
        rows = self._rows(rows)
        arrays = self.read(modality, rows)
        return Spectra(
            wavelength=self.wavelength(modality),
            flux=arrays["flux"],
            ivar=arrays["ivar"],
            mask=arrays["mask"],
            ids=_as_str(self._take(self._group["ids"], rows)),
            meta=self.labels(rows=rows) if labels else {},
            stats=arrays["stats"],
        )

    def labels(self, columns: Sequence[str] | None = None, rows: np.ndarray | slice | None = None) -> dict[str, np.ndarray]:
        """Label columns at ``rows``: float64 (NaN = missing), int64 (never missing) or str."""
        columns = list(self._label_columns) if columns is None else list(columns)
        missing = [c for c in columns if c not in self._label_columns]
        if missing:
            raise StoreError(f"{self.path}: no label column(s) {missing}; columns are {list(self._label_columns)}")
        rows = self._rows(rows)
        out = {}
        for column in columns:
            values = self._take(self._group["labels"][column], rows)
            kind = self._label_columns[column]
            out[column] = _as_str(values) if kind == "str" else values.astype(np.int64 if kind == "int" else np.float64)
        return out

    # -- writing -------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.path / ".writer.lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StoreError(f"{self.path}: another process is writing to this store") from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _arrays(self) -> Iterator[zarr.Array]:
        yield self._group["ids"]
        for column in self._label_columns:
            yield self._group["labels"][column]
        for modality in self._modalities:
            for name in ("flux", "ivar", "mask", "stats"):
                yield self._group[modality][name]

    def _trim_uncommitted(self) -> None:
        n = len(self)
        for array in self._arrays():
            if array.shape[0] != n:
                array.resize((n, *array.shape[1:]))

    def append(
        self,
        ids: Sequence[Any],
        spectra: Mapping[str, Spectra | Mapping[str, np.ndarray]],
        labels: Mapping[str, Sequence[Any]] | None = None,
    ) -> int:
        """Append rows atomically; return the new row count.

        ``spectra`` maps every modality of the store to a preprocessed :class:`Spectra` (or a mapping
        with ``flux``, ``ivar``, ``mask``, ``stats``) with one row per id. ``labels`` must give every
        label column of the store.
        """
        if not self._writable:
            raise StoreError(f"{self.path}: opened read-only; open with mode='a' to append")
        ids = np.asarray(ids).astype(str).reshape(-1)
        k = len(ids)
        if k == 0:
            return len(self)
        if len(np.unique(ids)) != k:
            raise StoreError(f"{self.path}: duplicate ids within the rows being appended")
        if set(spectra) != set(self._modalities):
            raise StoreError(f"{self.path}: append gives modalities {sorted(spectra)}, the store holds {sorted(self._modalities)}")
        labels = dict(labels or {})
        if set(labels) != set(self._label_columns):
            raise StoreError(
                f"{self.path}: append gives label columns {sorted(labels)}, the store holds {sorted(self._label_columns)}"
            )
        arrays: dict[tuple[str, ...], np.ndarray] = {("ids",): ids}
        for column, kind in self._label_columns.items():
            values = np.asarray(labels[column]).reshape(-1)
            if len(values) != k:
                raise StoreError(f"{self.path}: label {column!r} has {len(values)} values for {k} ids")
            if kind == "int" and values.dtype.kind not in "iub":
                raise StoreError(f"{self.path}: label {column!r} is an integer column; got values of dtype {values.dtype}")
            arrays[("labels", column)] = values.astype(str) if kind == "str" else values.astype(np.int64 if kind == "int" else np.float64)
        for modality, block in spectra.items():
            n_pixels = self._modalities[modality]["n_pixels"]
            n_stats = len(self._modalities[modality]["stats_names"])
            fields = _fields_of(block)
            expected = {"flux": (k, n_pixels), "ivar": (k, n_pixels), "mask": (k, n_pixels), "stats": (k, n_stats)}
            for name, shape in expected.items():
                if fields[name] is None or fields[name].shape != shape:
                    got = None if fields[name] is None else fields[name].shape
                    raise StoreError(f"{self.path}: {modality}.{name} must have shape {shape}, got {got}")
            arrays[(modality, "flux")] = fields["flux"].astype(np.float32)
            arrays[(modality, "ivar")] = fields["ivar"].astype(np.float32)
            arrays[(modality, "mask")] = fields["mask"].astype(bool)
            arrays[(modality, "stats")] = fields["stats"].astype(np.float32)
        with self._locked():
            self._trim_uncommitted()
            n = len(self)
            if n and np.isin(ids, self.ids).any():
                clash = ids[np.isin(ids, self.ids)][:5]
                raise StoreError(f"{self.path}: ids already in the store: {list(clash)}")
            for key, values in arrays.items():
                array = self._group["/".join(key)]
                array.resize((n + k, *array.shape[1:]))
                array[n : n + k] = values
            self._group.attrs.update({"n_rows": n + k, "revision": uuid.uuid4().hex})
        return n + k

    def set_meta(self, **meta: Any) -> None:
        """Record provenance (source, checksums, ingest report) in the store's attributes."""
        if not self._writable:
            raise StoreError(f"{self.path}: opened read-only")
        merged = self.meta | meta
        self._group.attrs["meta"] = merged


def is_store(path: str | Path) -> bool:
    """Whether ``path`` holds a specclip store (a zarr group with the ``specclip_store`` attribute)."""
    try:
        return "specclip_store" in json.loads((Path(path) / "zarr.json").read_text()).get("attributes", {})
    except (OSError, ValueError, AttributeError):
        return False


def replace_directory(finished: Path, path: Path) -> None:
    """Put the directory ``finished`` at ``path``, replacing what is there by an atomic exchange where
    the system has one (the path never reads as empty); what was at ``path`` is left at ``finished``
    (removed by the caller) or, without the exchange, removed here."""
    if path.exists() and _exchange(finished, path):
        return
    if path.exists():
        old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(path, old)
        os.replace(finished, path)
        shutil.rmtree(old)
    else:
        os.replace(finished, path)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 with RENAME_EXCHANGE); False where the system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _fields_of(block: Spectra | Mapping[str, np.ndarray]) -> dict[str, np.ndarray | None]:
    if isinstance(block, Spectra):
        return {"flux": block.flux, "ivar": block.ivar, "mask": block.mask, "stats": block.stats}
    return {name: None if block.get(name) is None else np.asarray(block[name]) for name in ("flux", "ivar", "mask", "stats")}

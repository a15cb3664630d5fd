"""Build a store from files or from spectra already read: read, preprocess, write, report.

Bad input never stops an ingest: a file no reader can read, or a spectrum its modality's
preprocessing rejects, is skipped and listed in the report with the reason. The store is built
under a temporary name and appears only when complete.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from specclip_core.components import get_modality, get_reader, readers_for
from specclip_core.data.store import SpectralStore
from specclip_core.errors import ReaderError, SpecCLIPError
from specclip_core.interfaces import Modality, Reader, Spectra
from specclip_core.util import atomic_write_text, progress_bar


@dataclass
class IngestReport:
    store: str
    modality: str
    n_files: int = 0
    n_spectra_read: int = 0
    n_spectra_written: int = 0
    skipped_files: list[tuple[str, str]] = field(default_factory=list)
    rejected_spectra: list[tuple[str, str]] = field(default_factory=list)
    masked_pixel_fraction: float = 0.0
    masked_pixels_per_spectrum_median: float = 0.0
    seconds: float = 0.0  # end to end: reading, preprocessing, joining labels and writing the store
    spectra_per_second: float = 0.0

    def summary(self) -> str:
        lines = [
            f"ingested {self.n_spectra_written} {self.modality} spectra into {self.store} in {self.seconds:.1f} s "
            f"({self.spectra_per_second:.0f} spectra/s)",
            f"files: {self.n_files} seen, {len(self.skipped_files)} skipped; spectra: {self.n_spectra_read} read, "
            f"{len(self.rejected_spectra)} rejected",
            f"masked pixels: {100 * self.masked_pixel_fraction:.2f}% of all, median {self.masked_pixels_per_spectrum_median:.0f} per spectrum",
        ]
        lines += [f"  skipped {path}: {reason}" for path, reason in self.skipped_files]
        lines += [f"  rejected {sid}: {reason}" for sid, reason in self.rejected_spectra]
        return "\n".join(lines)

    def save(self, path: Path) -> None:
        atomic_write_text(path, json.dumps(asdict(self), indent=2))


def expand_paths(paths: Iterable[str | Path], readers: Sequence[Reader]) -> list[Path]:
    """Files named directly, plus every file under named directories that matches a reader's patterns."""
    out: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            found = {p for reader in readers for pattern in reader.patterns for p in path.rglob(pattern) if p.is_file()}
            out.extend(sorted(found))
        else:
            out.append(path)
    return out


def choose_reader(path: Path, readers: Sequence[Reader]) -> Reader:
    if not path.exists():
        raise ReaderError(path, "no such file")
    for reader in readers:
        if reader.sniff(path):
            return reader
    raise ReaderError(path, f"no reader recognises this file (tried {', '.join(r.name for r in readers)})")


def read_files(
    paths: Iterable[str | Path], modality: str | None = None, reader: str | None = None, progress: bool = True
) -> tuple[list[tuple[Path, Spectra]], list[tuple[str, str]]]:
    """Read every file; return (path, spectra) for the readable ones and (path, reason) for the rest."""
    readers = [get_reader(reader)] if reader is not None else list(readers_for(modality))
    if not readers:
        raise SpecCLIPError(f"no reader registered for modality {modality!r}; is its plugin installed?")
    files = expand_paths(paths, readers)
    good, bad = [], []
    with progress_bar(len(files), "reading", "file", disable=not progress) as bar:
        for path in files:
            try:
                good.append((path, choose_reader(path, readers).read(path)))
            except ReaderError as error:
                bad.append((str(path), error.reason))
            except Exception as error:  # a reader bug must not stop a million-file ingest
                bad.append((str(path), f"{type(error).__name__}: {error}"))
            bar.update(1)
    return good, bad


def preprocess_robustly(modality: Modality, raw: Spectra, batch: int = 4096, progress: bool = True) -> tuple[Spectra | None, list[tuple[str, str]]]:
    """Preprocess in batches; a batch that fails is redone spectrum by spectrum to isolate the bad ones."""
    parts, rejected = [], []
    with progress_bar(len(raw), f"preprocessing {modality.name}", "spectrum", disable=not progress) as bar:
        for start in range(0, len(raw), batch):
            chunk = raw.subset(slice(start, start + batch))
            try:
                parts.append(modality.preprocess(chunk))
            except ValueError:
                for row in range(len(chunk)):
                    one = chunk.subset([row])
                    try:
                        parts.append(modality.preprocess(one))
                    except ValueError as error:
                        rejected.append((str(one.ids[0]), str(error)))
            bar.update(len(chunk))
    return (Spectra.concatenate(parts) if parts else None), rejected


def write_store(
    path: str | Path,
    modality: Modality,
    spectra: Spectra,
    label_columns: Mapping[str, str],
    attrs: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    batch: int = 8192,
) -> SpectralStore:
    """Write preprocessed spectra and their label columns (taken from ``spectra.meta``) as a new store."""
    with SpectralStore.build(path, {modality.name: modality}, label_columns, attrs, overwrite=overwrite) as store:
        for start in range(0, len(spectra), batch):
            part = spectra.subset(slice(start, start + batch))
            labels = {}
            for column, kind in label_columns.items():
                values = part.meta.get(column)
                if values is None:
                    if kind == "int":
                        raise SpecCLIPError(f"integer label {column!r} is missing for some spectra")
                    values = np.full(len(part), "" if kind == "str" else np.nan)
                labels[column] = values
            store.append(part.ids, {modality.name: part}, labels)
    return SpectralStore.open(path)


def join_labels(spectra: Spectra, table: Mapping[str, np.ndarray], id_column: str, source: str = "labels") -> Spectra:
    """Add the columns of a label table to ``spectra.meta``, matched on ``id_column`` = spectrum id.

    Where a spectrum has no row in the table, a column it already carries (e.g. from its file
    header) keeps its value; otherwise the value is missing (NaN or "").
    """
    if id_column not in table:
        raise SpecCLIPError(f"{source}: no column {id_column!r}; columns are {list(table)}")
    keys = np.asarray(table[id_column]).astype(str)
    where = {key: i for i, key in enumerate(keys)}
    index = np.array([where.get(i, -1) for i in spectra.ids])
    found = index >= 0
    meta = dict(spectra.meta)
    for column, values in table.items():
        if column == id_column:
            continue
        values = np.asarray(values)
        numeric = values.dtype.kind in "fiub"
        picked = values[np.clip(index, 0, None)].astype(np.float64 if numeric else str)
        previous = meta.get(column)
        if previous is not None and (np.asarray(previous).dtype.kind in "fiub") == numeric:
            fallback = np.asarray(previous).astype(np.float64 if numeric else str)
        else:
            fallback = np.full(len(spectra), np.nan if numeric else "", dtype=np.float64 if numeric else object).astype(np.float64 if numeric else str)
        meta[column] = np.where(found, picked, fallback)
    return Spectra(spectra.wavelength, spectra.flux, spectra.ivar, spectra.mask, spectra.ids, meta, spectra.stats)


def read_label_table(path: str) -> dict[str, Any]:
    """A CSV label table as columns; missing numbers become NaN and missing text "" (never a sentinel)."""
    from astropy.table import Table

    try:
        table = Table.read(path, format="ascii.csv")
    except Exception as error:
        raise SpecCLIPError(f"{path}: cannot read as a CSV table: {error}") from None
    columns = {}
    for name in table.colnames:
        data, missing = np.ma.getdata(table[name]), np.ma.getmaskarray(table[name])
        if data.dtype.kind in "iufb":
            columns[name] = np.where(missing, np.nan, data.astype(np.float64)) if missing.any() else np.asarray(data)
        else:
            columns[name] = np.where(missing, "", data.astype(str))
    return columns


def label_kinds(meta: Mapping[str, np.ndarray], columns: Sequence[str] | None = None) -> dict[str, str]:
    """'int', 'float' or 'str' for each meta column (all columns when ``columns`` is None)."""
    chosen = list(meta) if columns is None else list(columns)
    kinds = {"i": "int", "u": "int", "b": "int", "f": "float"}
    return {c: kinds.get(np.asarray(meta[c]).dtype.kind, "str") for c in chosen if c in meta}


def ingest_files(
    paths: Iterable[str | Path],
    modality: str,
    store_path: str | Path,
    reader: str | None = None,
    labels: Mapping[str, np.ndarray] | None = None,
    id_column: str | None = None,
    overwrite: bool = False,
    attrs: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> IngestReport:
    """Read files of one modality, preprocess, join labels, write a new store and its ingest report."""
    started = time.perf_counter()
    spec = get_modality(modality)
    good, bad = read_files(paths, spec.name, reader, progress)
    report = IngestReport(str(store_path), spec.name, n_files=len(good) + len(bad), skipped_files=bad)
    if not good:
        raise SpecCLIPError(f"no readable {spec.name} files among {report.n_files}; first problems: {bad[:3]}")
    by_grid: dict[bytes, list[Spectra]] = {}
    for _path, spectra in good:
        by_grid.setdefault(spectra.wavelength.tobytes(), []).append(spectra)
    processed, rejected = [], []
    for group in by_grid.values():
        raw = Spectra.concatenate(group)
        report.n_spectra_read += len(raw)
        done, bad_rows = preprocess_robustly(spec, raw, progress=progress)
        rejected += bad_rows
        if done is not None:
            processed.append(done)
    report.rejected_spectra = rejected
    if not processed:
        raise SpecCLIPError(f"every {spec.name} spectrum was rejected by preprocessing; first reasons: {rejected[:3]}")
    spectra = Spectra.concatenate(processed)
    if labels is not None:
        spectra = join_labels(spectra, labels, id_column or "id")
    columns = label_kinds(spectra.meta)
    masked = spectra.mask.sum(axis=1)
    report.masked_pixel_fraction = float(masked.sum() / spectra.mask.size)
    report.masked_pixels_per_spectrum_median = float(np.median(masked))
    report.n_spectra_written = len(spectra)
    write_store(store_path, spec, spectra, columns, {"ingest": {"n_files": report.n_files}, **(attrs or {})}, overwrite)
    report.seconds = time.perf_counter() - started
    report.spectra_per_second = len(spectra) / max(report.seconds, 1e-9)
    store = SpectralStore.open(store_path, mode="a")
    store.set_meta(ingest_report=asdict(report))
    return report

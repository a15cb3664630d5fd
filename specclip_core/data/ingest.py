"""Build a store from files or from spectra already read: read, preprocess, write, report.

Bad input never stops an ingest: a file no reader can read, a spectrum its modality's
preprocessing rejects (or that leaves it with a non-finite value), and the copies of a duplicated id
that the ``duplicates`` policy drops are skipped and listed in the report, each with its file, id,
reason and the check that failed. Files under a directory whose names match no reader's pattern
are sniffed by content; those no reader takes are listed as unrecognised. Files are read and
preprocessed a chunk at a time (:mod:`specclip_core.data.stream`) and wait on disk
(:mod:`specclip_core.data.staging`) until the rows to keep are known. The store, with its report,
is built under a temporary name and appears only when complete.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from specclip_core.components import get_modality, get_reader, readers_for
from specclip_core.data.ids import duplicated, lookup, normalise_ids
from specclip_core.data.staging import Staging
from specclip_core.data.store import SpectralStore
from specclip_core.data.stream import DEFAULT_CHUNK, SpectraStream, choose_reader, expand_paths, unmatched_files
from specclip_core.errors import ReaderError, SpecCLIPError
from specclip_core.interfaces import SIMULATED, Modality, Spectra
from specclip_core.util import atomic_write_text, progress_bar


@dataclass
class LabelMatch:
    """How a label table met the spectra (see :func:`join_labels`)."""

    n_rows: int  # rows of the label table
    n_rows_matched: int  # rows whose id is a spectrum's
    n_spectra_without_row: int  # spectra no (unambiguous) row names
    n_ids_without_spectrum: int  # distinct ids of the table that name no spectrum
    duplicated_ids: list[str] = field(default_factory=list)  # ids on more than one row: those rows are not used
    columns: dict[str, str] = field(default_factory=dict)  # table column -> "the label table" or "the label table, else the files"

    def summary(self) -> str:
        duplicated = "no duplicated id"
        if self.duplicated_ids:
            duplicated = f"{len(self.duplicated_ids)} ids on several rows, not used ({', '.join(self.duplicated_ids[:5])})"
        return (
            f"labels: {self.n_rows} rows in the table, {self.n_rows_matched} matched to a spectrum; "
            f"{self.n_spectra_without_row} spectra without a label row; {self.n_ids_without_spectrum} label ids without a spectrum; "
            f"{duplicated}"
        )


DuplicatePolicy = Literal["first", "best_snr", "reject"]
"""What ingest keeps of an id held by several spectra: the first (in file order), the one of best
S/N (median of flux * sqrt(ivar) over good pixels, after preprocessing; ties: the first), or none."""


@dataclass
class Problem:
    """One rejected file or spectrum: where, which id ("" for a whole file), why, and the check that failed."""

    file: str
    id: str
    reason: str
    check: str


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
    n_simulated: int = 0
    simulated_from: str = "files"  # "files": each file's own flag (see Reader); "setting": the ingest's simulated setting
    labels: LabelMatch | None = None
    columns: dict[str, str] = field(default_factory=dict)  # label column of the store -> where its values come from
    problems: list[Problem] = field(default_factory=list)  # every rejected file and spectrum
    unrecognised_files: list[str] = field(default_factory=list)  # files found in directories that no reader takes
    duplicates: list[dict[str, Any]] = field(default_factory=list)  # {id, files, kept}: ids held by several spectra
    duplicates_policy: str = "first"

    def summary(self) -> str:
        lines = [
            f"ingested {self.n_spectra_written} {self.modality} spectra into {self.store} in {self.seconds:.1f} s "
            f"({self.spectra_per_second:.0f} spectra/s)",
            f"files: {self.n_files} seen, {len(self.skipped_files)} skipped; spectra: {self.n_spectra_read} read, "
            f"{len(self.rejected_spectra)} rejected; {len(self.unrecognised_files)} files in the directories no reader takes; "
            f"{len(self.duplicates)} duplicated ids (policy {self.duplicates_policy})",
            f"masked pixels: {100 * self.masked_pixel_fraction:.2f}% of all, median {self.masked_pixels_per_spectrum_median:.0f} per spectrum",
            f"simulated: {self.n_simulated} of {self.n_spectra_written} spectra "
            f"(from the {'files' if self.simulated_from == 'files' else 'simulated setting'})",
        ]
        if self.labels is not None:
            lines.append(self.labels.summary())
        by_source: dict[str, list[str]] = {}
        for column, source in self.columns.items():
            by_source.setdefault(source, []).append(column)
        lines += [f"columns from {source}: {', '.join(columns)}" for source, columns in by_source.items()]
        lines += [f"  rejected {p.file}{f' [{p.id}]' if p.id else ''}: {p.reason} (check: {p.check})" for p in self.problems]
        lines += [f"  unrecognised {path}" for path in self.unrecognised_files]
        return "\n".join(lines)

    def save(self, path: Path) -> None:
        atomic_write_text(path, json.dumps(asdict(self), indent=2))


def read_checked(
    paths: Iterable[str | Path], modality: str | None = None, reader: str | None = None, progress: bool = True
) -> tuple[list[tuple[Path, Spectra]], list[Problem], list[str]]:
    """Read every file: (path, spectra) of the readable ones, a :class:`Problem` for each of the
    rest, and the files found in directories under no reader's pattern that no reader takes."""
    readers = [get_reader(reader)] if reader is not None else list(readers_for(modality))
    if not readers:
        raise SpecCLIPError(f"no reader registered for modality {modality!r}; is its plugin installed?")
    paths = list(paths)
    files = [(p, False) for p in expand_paths(paths, readers)] + [(p, True) for p in unmatched_files(paths, readers)]
    good, bad, unrecognised = [], [], []
    with progress_bar(len(files), "reading", "file", disable=not progress) as bar:
        for path, by_content in files:
            try:
                good.append((path, choose_reader(path, readers).read(path)))
            except ReaderError as error:
                if by_content and error.check == "sniff":
                    unrecognised.append(str(path))
                else:
                    bad.append(Problem(str(path), "", error.reason, error.check))
            except Exception as error:  # a reader bug must not stop a million-file ingest
                bad.append(Problem(str(path), "", f"{type(error).__name__}: {error}", "read"))
            bar.update(1)
    return good, bad, unrecognised


def read_files(
    paths: Iterable[str | Path], modality: str | None = None, reader: str | None = None, progress: bool = True
) -> tuple[list[tuple[Path, Spectra]], list[tuple[str, str]]]:
    """Read every file; return (path, spectra) for the readable ones and (path, reason) for the rest
    (files in directories that no reader takes are left out; see :func:`read_checked`)."""
    good, bad, _ = read_checked(paths, modality, reader, progress)
    return good, [(p.file, p.reason) for p in bad]


def resolve_duplicates(
    ids: np.ndarray, files: np.ndarray, snr: np.ndarray, paths: Sequence[str | Path], policy: DuplicatePolicy
) -> tuple[np.ndarray, list[Problem], list[dict[str, Any]]]:
    """The rows to keep when ids repeat (compared as the store does, as written): one row per id, or
    none under ``reject``; each dropped copy becomes a problem (check ``duplicate-id``) naming every
    file that holds the id. ``files`` gives each row's index in ``paths``; ``snr`` each row's S/N."""
    ids = np.asarray(ids).astype(str)
    unique, first, inverse, counts = np.unique(ids, return_index=True, return_inverse=True, return_counts=True)
    repeated = np.flatnonzero(counts > 1)
    by_id, ends = np.argsort(inverse, kind="stable"), np.cumsum(counts)
    drop: list[int] = []
    problems, duplicates = [], []
    for group in repeated[np.argsort(first[repeated])]:  # in the order the ids first appear
        copies = by_id[ends[group] - counts[group] : ends[group]]
        sid = str(unique[group])
        held = [str(paths[files[row]]) for row in copies]
        kept = None if policy == "reject" else int(copies[np.argmax(snr[copies])]) if policy == "best_snr" else int(copies[0])
        duplicates.append({"id": sid, "files": held, "kept": None if kept is None else str(paths[files[kept]])})
        reason = f"id {sid} is held by {len(copies)} spectra (in {', '.join(sorted(set(held)))}); duplicates policy {policy!r}"
        for row in copies:
            if row != kept:
                drop.append(int(row))
                problems.append(Problem(str(paths[files[row]]), sid, reason, "duplicate-id"))
    return np.setdiff1d(np.arange(len(ids)), drop), problems, duplicates


def write_store(
    path: str | Path,
    modality: Modality,
    spectra: Spectra | Iterable[Spectra],
    label_columns: Mapping[str, str],
    attrs: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    batch: int = 8192,
) -> SpectralStore:
    """Write preprocessed spectra (one :class:`Spectra`, or pieces of them) and their label columns
    (taken from each spectrum's meta) as a new store."""
    pieces = (spectra.subset(slice(start, start + batch)) for start in range(0, len(spectra), batch)) if isinstance(spectra, Spectra) else spectra
    with SpectralStore.build(path, {modality.name: modality}, label_columns, attrs, overwrite=overwrite) as store:
        for part in pieces:
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


def join_labels(spectra: Spectra, table: Mapping[str, np.ndarray], id_column: str, source: str = "labels") -> tuple[Spectra, LabelMatch]:
    """Add the columns of a label table to ``spectra.meta``, matched on ``id_column`` = spectrum id
    (both compared as :func:`~specclip_core.data.ids.normalise_ids` gives them).

    Where a spectrum has no row in the table, a column it already carries (e.g. from its file
    header) keeps its value; otherwise the value is missing (NaN or ""). An id on more than one row
    is ambiguous: those rows give no labels, and the match lists the id.
    """
    if id_column not in table:
        raise SpecCLIPError(f"{source}: no column {id_column!r}; columns are {list(table)}")
    keys = normalise_ids(table[id_column], f"{source}: column {id_column!r}")
    wanted = normalise_ids(spectra.ids, "spectrum ids")
    index = lookup(keys, wanted)
    found = index >= 0
    match = LabelMatch(
        n_rows=len(keys),
        n_rows_matched=int(np.unique(index[found]).size),
        n_spectra_without_row=int((~found).sum()),
        n_ids_without_spectrum=int(np.setdiff1d(keys[keys != ""], wanted).size),
        duplicated_ids=[str(k) for k in duplicated(keys)],
    )
    meta = dict(spectra.meta)
    for column, values in table.items():
        if column == id_column:
            continue
        values = np.asarray(values)
        numeric = values.dtype.kind in "fiub"
        picked = values[np.clip(index, 0, None)] if len(values) else np.zeros(len(index), values.dtype)
        picked = picked.astype(np.float64 if numeric else str)
        previous = meta.get(column)
        if previous is not None and (np.asarray(previous).dtype.kind in "fiub") == numeric:
            fallback = np.asarray(previous).astype(np.float64 if numeric else str)
            match.columns[column] = "the label table, else the files"
        else:
            fallback = np.full(len(spectra), np.nan if numeric else "", dtype=np.float64 if numeric else object).astype(np.float64 if numeric else str)
            match.columns[column] = "the label table"
        meta[column] = np.where(found, picked, fallback)
    return Spectra(spectra.wavelength, spectra.flux, spectra.ivar, spectra.mask, spectra.ids, meta, spectra.stats), match


def read_label_table(path: str, text_columns: Iterable[str] = ()) -> dict[str, Any]:
    """A CSV label table as columns; missing numbers become NaN and missing text "" (never a sentinel).

    ``text_columns`` (id columns) are read as text, so that a long integer id never passes through a
    float (a column of integers with one missing value would otherwise be read as float64)."""
    from astropy.io.ascii import convert_numpy
    from astropy.table import Table

    text_columns = list(text_columns)
    options = {"converters": {name: [convert_numpy(str)] for name in text_columns}, "fast_reader": False} if text_columns else {}
    try:
        table = Table.read(path, format="ascii.csv", **options)
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


def _flags(path: Path, spectra: Spectra, setting: bool | None) -> np.ndarray:
    """Per spectrum of one file: simulated or not (see :class:`~specclip_core.interfaces.Reader`)."""
    own = spectra.meta.get(SIMULATED)
    if own is not None and np.asarray(own).dtype.kind not in "biuf":
        raise ReaderError(path, f"meta column {SIMULATED!r} must be boolean, got values of dtype {np.asarray(own).dtype}")
    flags = None if own is None else np.asarray(own) != 0
    if setting is None:
        return np.zeros(len(spectra), bool) if flags is None else flags
    if flags is not None and (flags != setting).any():
        said = bool(flags[flags != setting][0])
        raise ReaderError(path, f"the file says {SIMULATED} = {said}, but the ingest's setting simulated is {setting}", check="simulated-flag")
    return np.full(len(spectra), setting)


def mark_simulated(path: Path, spectra: Spectra, setting: bool | None) -> Spectra:
    """Give a file's spectra a boolean meta column ``simulated``: the ``simulated`` setting when
    given, else the file's own flag (absent: not simulated); ReaderError when the file's own flag
    contradicts the setting."""
    spectra.meta[SIMULATED] = _flags(path, spectra, setting)
    return spectra


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
    simulated: bool | None = None,
    labels_source: str = "labels",
    duplicates: DuplicatePolicy = "first",
    chunk: int = DEFAULT_CHUNK,
    workers: int = 1,
) -> IngestReport:
    """Read files of one modality, preprocess, join labels, write a new store and its ingest report.

    ``simulated`` says whether every spectrum is simulated; None takes each file's own flag (see
    :class:`~specclip_core.interfaces.Reader`). When any spectrum is simulated, the store has a 0/1
    label column ``simulated`` and its meta ``simulated_modalities`` lists the modality.
    ``labels_source`` names the label table in errors. ``duplicates`` is the :data:`DuplicatePolicy`
    for an id held by several spectra. Files are read and preprocessed ``chunk`` spectra at a time,
    by ``workers`` processes (see :mod:`specclip_core.data.stream`); the preprocessed arrays wait on
    disk beside the store."""
    started = time.perf_counter()
    spec = get_modality(modality)
    if labels is not None and SIMULATED in labels:
        raise SpecCLIPError(f"{labels_source}: column {SIMULATED!r} is set by ingest (from the files or the simulated setting); rename it")
    stream = SpectraStream(paths, spec, reader, chunk, progress, on_raw=lambda path, raw: mark_simulated(path, raw, simulated), workers=workers)
    store_path = Path(store_path)
    store_path.parent.mkdir(parents=True, exist_ok=True)
    for stale in store_path.parent.glob(f".{store_path.name}.staging-*"):  # left by an ingest of this store that was killed
        shutil.rmtree(stale, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix=f".{store_path.name}.staging-", dir=store_path.parent) as scratch:
        staging = Staging(Path(scratch))
        try:
            for batch in stream:
                staging.append(batch.spectra, batch.files)
            return _write_staged(stream, staging, spec, store_path, labels, id_column, labels_source, duplicates, simulated, overwrite, attrs, started, chunk)
        finally:
            staging.close()


def _write_staged(
    stream: SpectraStream, staging: Staging, spec: Modality, store_path: Path, labels: Mapping[str, np.ndarray] | None,
    id_column: str | None, labels_source: str, duplicates: DuplicatePolicy, simulated: bool | None, overwrite: bool,
    attrs: Mapping[str, Any] | None, started: float, chunk: int,
) -> IngestReport:
    """The second half of :func:`ingest_files`: choose the rows, join the labels, write the store."""
    files = [str(path) for path in stream.files]
    problems = [Problem(*problem) for problem in stream.problems]
    skipped = [p for p in problems if not p.id]
    report = IngestReport(str(store_path), spec.name, n_files=len(files) - len(stream.unrecognised), skipped_files=[(p.file, p.reason) for p in skipped])
    report.simulated_from = "files" if simulated is None else "setting"
    report.unrecognised_files, report.duplicates_policy = stream.unrecognised, duplicates
    report.n_spectra_read = stream.n_read
    if not stream.n_files_read:
        raise SpecCLIPError(
            f"no readable {spec.name} files among {report.n_files} (and {len(stream.unrecognised)} files no reader takes); "
            f"first problems: {report.skipped_files[:3]}"
        )
    row_files = staging.column("files").astype(np.int64)
    whole = np.flatnonzero(~np.isin(row_files, sorted(stream.failed)))  # rows of files that failed part-way are dropped
    ids = staging.column("ids")
    kept, dropped, report.duplicates = resolve_duplicates(ids[whole], row_files[whole], staging.column("snr")[whole], files, duplicates)
    rows = whole[kept]
    rejected = dropped + [p for p in problems if p.id]
    report.rejected_spectra = [(p.id, p.reason) for p in rejected]
    report.problems = skipped + rejected
    if not len(rows):
        raise SpecCLIPError(f"every {spec.name} spectrum was rejected; first reasons: {[(p.file, p.id, p.reason) for p in rejected[:3]]}")
    meta = {key: values[rows] for key, values in staging.meta().items()}
    if SIMULATED not in meta:
        raise SpecCLIPError(f"{spec.name} preprocessing dropped the spectra's meta columns (Modality.preprocess must keep them)")
    from_files = set(meta) - {SIMULATED}
    if labels is not None:
        bare = Spectra(np.zeros(0), np.zeros((len(rows), 0)), np.zeros((len(rows), 0)), np.zeros((len(rows), 0), bool), ids[rows], meta)
        joined, report.labels = join_labels(bare, labels, id_column or "id", labels_source)
        meta = joined.meta
    flags = meta.pop(SIMULATED).astype(bool)
    report.n_simulated = int(flags.sum())
    provenance = {"ingest": {"n_files": report.n_files}}
    if flags.any():
        meta[SIMULATED] = flags.astype(np.int64)
        provenance["simulated_modalities"] = [spec.name]
    columns = label_kinds(meta)
    matched = report.labels.columns if report.labels is not None else {}
    flagged_by = "ingest (the files' flags)" if simulated is None else "ingest (the simulated setting)"
    report.columns = {c: matched.get(c, "the files" if c in from_files else flagged_by) for c in columns}
    masked = staging.column("masked")[rows]
    report.masked_pixel_fraction = float(masked.sum() / (len(rows) * staging.wavelength.size))
    report.masked_pixels_per_spectrum_median = float(np.median(masked))
    report.n_spectra_written = len(rows)
    report.seconds = time.perf_counter() - started  # up to writing: the report is committed with the store
    report.spectra_per_second = len(rows) / max(report.seconds, 1e-9)
    attrs = {**provenance, **(attrs or {}), "ingest_report": asdict(report)}
    write_store(store_path, spec, staging.chunks(rows, meta, chunk), columns, attrs, overwrite)
    return report

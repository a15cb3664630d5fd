"""Inputs read and preprocessed in chunks: what ingest and predict hold at once is one chunk of
spectra, whatever the size of the files.

A :class:`SpectraStream` reads each file through its reader's
:meth:`~specclip_core.interfaces.Reader.read_chunks`, gathers raw pieces until ``chunk`` spectra
are waiting, preprocesses them and yields a :class:`Batch`: the preprocessed spectra and, per row,
the index of the file it came from. Files it cannot read become problems; a file that fails after
some of its pieces were yielded is listed in :attr:`SpectraStream.failed`, and the consumer drops
those rows (so a file is taken whole or not at all).

With ``workers`` > 1, files are read and preprocessed in that many forked worker processes, and the
rows and every report come out as with one process: several files are shared out in groups of
consecutive files, each group read whole by one worker (memory: about :data:`GROUP_BYTES` of files,
or the largest file, times the workers, plus the preprocessed spectra of the files read ahead, see
:data:`READ_AHEAD_BYTES`); :meth:`SpectraStream.start` sets them reading before the consumer
iterates, so its own setup (loading a model) overlaps the reading; a single file whose reader reads in
shares (:meth:`~specclip_core.interfaces.Reader.read_share`) is read by all the workers together,
each taking every ``workers``-th block of rows, and their blocks are put back in order.
"""

from __future__ import annotations

import itertools
import multiprocessing
import multiprocessing.pool
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from specclip_core.components import get_reader, readers_for
from specclip_core.data.inputs import verify
from specclip_core.errors import ReaderError, SpecCLIPError
from specclip_core.interfaces import Modality, Reader, Spectra
from specclip_core.threads import threads_beside
from specclip_core.util import progress_bar

DEFAULT_CHUNK = 4096
"""Spectra held at once by ingest and predict; memory is about this times what one raw spectrum
takes while its reader builds it (a few kB for a spectrum read from a file of its own; tens of kB for
a row of basis-function coefficients that a library samples)."""

FILE_COLUMN = "__file__"


@dataclass
class Batch:
    """Preprocessed spectra and, per row, the index (in :attr:`SpectraStream.files`) of its file."""

    spectra: Spectra
    files: np.ndarray


class SpectraStream:
    """Iterate over the spectra of files in preprocessed :class:`Batch` es of about ``chunk`` spectra.

    ``on_raw(path, spectra)`` may change or refuse (ReaderError) each raw piece before preprocessing.
    After iterating: ``problems`` holds (file, id, reason, check) of every rejected file and spectrum
    (check ``reader-skip``: an entry the reader left out, :attr:`Spectra.skipped`),
    ``unrecognised`` the files found in directories that no reader takes, ``failed`` the indices of
    files rejected after some of their rows were yielded, ``n_read`` the raw spectra read.
    ``workers`` > 1 reads files in that many processes (see the module's docstring).
    """

    def __init__(
        self,
        paths: Iterable[str | Path],
        modality: Modality,
        reader: str | None = None,
        chunk: int = DEFAULT_CHUNK,
        progress: bool = True,
        on_raw: Callable[[Path, Spectra], Spectra] | None = None,
        workers: int = 1,
    ):
        if chunk < 1:
            raise SpecCLIPError(f"chunk must be at least 1 spectrum, got {chunk}")
        if workers < 1:
            raise SpecCLIPError(f"workers must be at least 1 process, got {workers}")
        self.modality, self.chunk, self.progress, self.on_raw, self.workers = modality, chunk, progress, on_raw, workers
        self.readers = [get_reader(reader)] if reader is not None else list(readers_for(modality.name))
        if not self.readers:
            raise SpecCLIPError(f"no reader registered for modality {modality.name!r}; is its plugin installed?")
        paths = list(paths)
        listed = [(p, False) for p in expand_paths(paths, self.readers)] + [(p, True) for p in unmatched_files(paths, self.readers)]
        self.files = [path for path, _ in listed]
        self._by_content = [by_content for _, by_content in listed]
        self.problems: list[tuple[str, str, str, str]] = []
        self.unrecognised: list[str] = []
        self.failed: set[int] = set()
        self.n_read = 0
        self.n_files_read = 0
        self._reading: _WorkerReading | None = None

    def _forks_workers(self) -> bool:
        return self.workers > 1 and "fork" in multiprocessing.get_all_start_methods()

    def _reads_files_in_workers(self) -> bool:
        return self._forks_workers() and len(self.files) > 1

    def start(self) -> None:
        """Fork the worker processes and set them reading now (where several files are read in
        workers; otherwise nothing happens before iterating), so that what the caller does before
        iterating overlaps the reading. :meth:`close` stops them when the stream is not iterated to
        its end."""
        if self._reading is None and self._reads_files_in_workers():
            self._reading = _WorkerReading(self)

    def close(self) -> None:
        """Stop the worker processes :meth:`start` set reading (nothing when none are)."""
        if self._reading is not None:
            self._reading.close()
            self._reading = None

    def __iter__(self) -> Iterator[Batch]:
        if self._reads_files_in_workers():
            yield from self._files_in_workers()
            return
        if self._forks_workers() and len(self.files) == 1:
            reader = self._shared_reader()
            if reader is not None:
                yield from self._file_in_shares(reader)
                return
        waiting: list[tuple[int, Spectra]] = []
        n_waiting = 0
        with progress_bar(len(self.files), "reading", "file", disable=not self.progress) as bar:
            for index in range(len(self.files)):
                pieces, yielded = self._pieces(index), False
                while True:
                    try:
                        raw = next(pieces, None)
                    except Exception as error:  # a reader bug must not stop a million-file ingest
                        self._reject(index, *_reason_and_check(error), yielded)
                        waiting = [(i, part) for i, part in waiting if i != index]
                        n_waiting = sum(len(part) for _, part in waiting)
                        break
                    if raw is None:
                        self.n_files_read += 1
                        break
                    waiting.append((index, raw))
                    n_waiting += len(raw)
                    del raw
                    if n_waiting >= self.chunk:
                        yielded = True
                        yield from self._preprocess(waiting)
                        waiting, n_waiting = [], 0
                bar.update(1)
            if waiting:
                yield from self._preprocess(waiting)

    def _files_in_workers(self) -> Iterator[Batch]:
        """Groups of files read by the forked workers (:class:`_WorkerReading`), gathered in order
        into batches."""
        self.start()
        reading, waiting = self._reading, []
        try:
            with progress_bar(len(self.files), "reading", "file", disable=not self.progress) as bar:
                for done, busy in reading:
                    self.problems += done.problems
                    self.unrecognised += done.unrecognised
                    self.n_read += done.n_read
                    self.n_files_read += done.n_files_read
                    waiting += done.batches
                    bar.update(done.n_files)
                    if sum(len(batch.files) for batch in waiting) >= self.chunk:
                        reading.beside(busy)
                        yield _joined(waiting)
                        waiting = []
        finally:
            self.close()
        if waiting:
            yield _joined(waiting)

    def _file_groups(self) -> list[tuple[list[int], int]]:
        """Consecutive files in groups of at most :data:`GROUP_FILES` files and :data:`GROUP_BYTES`
        (one file may be larger), a few groups per worker at least, each with its bytes: a worker
        preprocesses a group together, as one process preprocesses a chunk."""
        most = max(1, min(GROUP_FILES, len(self.files) // (4 * self.workers)))
        groups: list[list[int]] = [[]]
        sizes = [0]
        for index, path in enumerate(self.files):
            try:
                nbytes = path.stat().st_size
            except OSError:
                nbytes = 0
            if groups[-1] and (len(groups[-1]) >= most or sizes[-1] + nbytes > GROUP_BYTES):
                groups.append([])
                sizes.append(0)
            groups[-1].append(index)
            sizes[-1] += nbytes
        return list(zip(groups, sizes))

    def _shared_reader(self) -> Reader | None:
        """The reader of the one file when it reads in shares (None for a file no reader takes)."""
        try:
            reader = choose_reader(self.files[0], self.readers)
        except ReaderError:
            return None
        return reader if reader.shares else None

    def _file_in_shares(self, reader: Reader) -> Iterator[Batch]:
        """The one file read by every worker together (:func:`_read_share`), its blocks taken in turn."""
        global _FORKED
        _FORKED, context = self, multiprocessing.get_context("fork")
        queues = [context.Queue(maxsize=READ_AHEAD) for _ in range(self.workers)]
        finished = [context.Event() for _ in range(self.workers)]
        processes = [context.Process(target=_read_share, args=(reader, k, self.workers, queue, done), daemon=True) for k, (queue, done) in enumerate(zip(queues, finished))]
        for process in processes:
            process.start()
        _FORKED, yielded = None, False
        try:
            with threads_beside(self.workers) as beside:
                for block in itertools.count():
                    kind, *content = queues[block % self.workers].get()
                    beside(sum(process.is_alive() and not done.is_set() for process, done in zip(processes, finished)))
                    if kind == "done":
                        self.n_files_read += 1
                        break
                    if kind == "error":
                        self._reject(0, *content, yielded)
                        break
                    batches, problems, n_read = content
                    self.problems += problems
                    self.n_read += n_read
                    for batch in batches:
                        yielded = True
                        yield batch
        finally:
            for process in processes:
                process.kill()
                process.join()

    @property
    def rejected(self) -> list[tuple[str, str]]:
        """(``file`` or ``file:id``, reason) of every rejected file and spectrum, and of the files no reader takes."""
        problems = [(f"{file}:{sid}" if sid else file, reason) for file, sid, reason, _ in self.problems]
        return problems + [(path, "no reader of the modality takes this file") for path in self.unrecognised]

    def _pieces(self, index: int, pieces: Iterator[Spectra] | None = None) -> Iterator[Spectra]:
        """The raw pieces of file ``index`` (its reader's ``read_chunks``, unless ``pieces`` are given),
        each with its file index in meta, its skipped entries reported (ReaderError from the reader)."""
        path = self.files[index]
        for raw in pieces if pieces is not None else choose_reader(path, self.readers).read_chunks(path, self.chunk):
            self.problems += [(str(path), str(sid), reason, "reader-skip") for sid, reason in raw.skipped]
            raw = self.on_raw(path, raw) if self.on_raw else raw
            raw.meta[FILE_COLUMN] = np.full(len(raw), index)
            yield raw
            del raw  # before the reader builds the next piece: one piece in memory at a time

    def _reject(self, index: int, reason: str, check: str, yielded: bool) -> None:
        path = str(self.files[index])
        if self._by_content[index] and check == "sniff":
            self.unrecognised.append(path)
            return
        self.problems.append((path, "", reason, check))
        if yielded:
            self.failed.add(index)

    def _preprocess(self, waiting: list[tuple[int, Spectra]]) -> Iterator[Batch]:
        by_grid: dict[bytes, list[Spectra]] = {}
        for _, part in waiting:
            by_grid.setdefault(part.wavelength.tobytes(), []).append(part)
        for group in by_grid.values():
            raw = Spectra.concatenate(group)
            self.n_read += len(raw)
            files = raw.meta[FILE_COLUMN]
            done, rejected = preprocess_checked(self.modality, raw, batch=self.chunk, progress=False)
            self.problems += [(str(self.files[files[row]]), sid, reason, check) for sid, reason, check, row in rejected]
            if done is None:
                continue
            if FILE_COLUMN not in done.meta:
                raise SpecCLIPError(f"{self.modality.name} preprocessing dropped the spectra's meta columns (Modality.preprocess must keep them)")
            yield Batch(done, done.meta.pop(FILE_COLUMN).astype(np.int64))


GROUP_FILES = 64
GROUP_BYTES = 32 << 20
"""Files a worker reads and preprocesses together: at most this many, or about this many bytes."""

READ_AHEAD = 2
"""Groups of files (or blocks of one file's rows) a worker may have read beyond those the parent has
taken; then it waits (unless the files read ahead are fewer than :data:`READ_AHEAD_BYTES`)."""

READ_AHEAD_BYTES = 256 << 20
"""Files of this many bytes in all may be read ahead of the parent, however many groups they make:
while the parent loads a model, the workers read on (the preprocessed spectra of one file from a
spectrum of its own take less memory than the file)."""

SHARE_ROWS = 1024
"""Rows per block when workers read one file together: small enough to keep both cores busy."""

_FORKED: SpectraStream | None = None
"""The stream whose files forked workers read (set while they fork)."""


@dataclass
class _FileResult:
    batches: list[Batch] = field(default_factory=list)
    problems: list[tuple[str, str, str, str]] = field(default_factory=list)
    unrecognised: list[str] = field(default_factory=list)
    n_read: int = 0
    n_files_read: int = 0
    n_files: int = 0


class _WorkerReading:
    """The groups of a stream's files (:meth:`SpectraStream._file_groups`) read by forked workers
    (:func:`_read_files`): iterating gives each group's :class:`_FileResult` in order and how many
    workers still have work. At most :data:`READ_AHEAD` groups per worker, or files of
    :data:`READ_AHEAD_BYTES`, are read beyond those taken. While they read, this process computes
    beside them (:func:`~specclip_core.threads.threads_beside`: :attr:`beside`)."""

    def __init__(self, stream: SpectraStream):
        global _FORKED
        self.workers = min(stream.workers, len(stream.files))
        self._groups = iter(stream._file_groups())
        self._pending: deque[tuple[multiprocessing.pool.AsyncResult, int]] = deque()
        self._ahead_bytes = 0
        self._stack = ExitStack()
        _FORKED = stream
        try:
            self.beside = self._stack.enter_context(threads_beside(self.workers))
            self._pool = self._stack.enter_context(multiprocessing.get_context("fork").Pool(self.workers, initializer=_one_thread))
            self._submit()
        except BaseException:
            self.close()
            raise

    def _submit(self) -> None:
        while len(self._pending) < READ_AHEAD * self.workers or self._ahead_bytes < READ_AHEAD_BYTES:
            group = next(self._groups, None)
            if group is None:
                return
            indices, nbytes = group
            self._pending.append((self._pool.apply_async(_read_files, (indices,)), nbytes))
            self._ahead_bytes += nbytes

    def __iter__(self) -> Iterator[tuple[_FileResult, int]]:
        while self._pending:
            task, nbytes = self._pending.popleft()
            done = task.get()
            self._ahead_bytes -= nbytes
            self._submit()
            yield done, sum(not task.ready() for task, _ in self._pending)

    def close(self) -> None:
        """Stop the workers and give this process its threads back."""
        global _FORKED
        try:
            self._stack.close()
        finally:
            _FORKED = None


def _one_thread() -> None:
    """A worker computes with one thread: the workers share the CPUs out, their BLAS and torch
    pools (forked from the parent's) would fight over them."""
    from specclip_core.threads import use_threads

    use_threads(1)


def _read_files(indices: list[int]) -> _FileResult:
    """In a worker: files ``indices`` of the stream that forked it, read and preprocessed (the rows of
    a file that fails part-way dropped)."""
    stream = _FORKED
    stream.problems, stream.unrecognised, stream.failed, stream.n_read, stream.n_files_read = [], [], set(), 0, 0
    files, by_content = stream.files, stream._by_content
    stream.files, stream._by_content = [files[i] for i in indices], [by_content[i] for i in indices]
    stream.workers, stream.progress = 1, False
    try:
        batches = list(stream)
    finally:
        stream.files, stream._by_content = files, by_content
    where = np.asarray(indices)
    kept = [Batch(b.spectra.subset(np.flatnonzero(k)), where[b.files[k]]) for b in batches for k in [~np.isin(b.files, sorted(stream.failed))] if k.any()]
    return _FileResult(kept, stream.problems, stream.unrecognised, stream.n_read, stream.n_files_read, len(indices))


def _read_share(reader: Reader, share: int, shares: int, queue, finished) -> None:
    """In a worker: share ``share`` of the stream's one file, each block preprocessed and put on
    ``queue`` as ("block", batches, problems, spectra read); then ("done",), or ("error", reason,
    check), ``finished`` set once nothing is left to read (only to hand over)."""
    _one_thread()
    stream = _FORKED
    rows = max(1, min(stream.chunk, SHARE_ROWS))
    stream.problems, stream.n_read = [], 0
    try:
        for raw in stream._pieces(0, reader.read_share(stream.files[0], rows, share, shares)):
            batches = list(stream._preprocess([(0, raw)]))
            queue.put(("block", batches, stream.problems, stream.n_read))
            stream.problems, stream.n_read = [], 0
    except Exception as error:  # a reader bug must not stop a million-file ingest
        finished.set()
        queue.put(("error", *_reason_and_check(error)))
        return
    finished.set()
    queue.put(("done",))


def _reason_and_check(error: Exception) -> tuple[str, str]:
    """A reader's failure as (reason, check): a ReaderError's own, else the exception named (check ``read``)."""
    if isinstance(error, ReaderError):
        return error.reason, error.check
    return f"{type(error).__name__}: {error}", "read"


def _joined(batches: list[Batch]) -> Batch:
    if len(batches) == 1:
        return batches[0]
    return Batch(Spectra.concatenate([b.spectra for b in batches]), np.concatenate([b.files for b in batches]))


def _matches(path: Path, readers: Sequence[Reader]) -> bool:
    return any(path.match(pattern) for reader in readers for pattern in reader.patterns)


def _regular_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file())


def expand_paths(paths: Iterable[str | Path], readers: Sequence[Reader]) -> list[Path]:
    """Files named directly, plus every file under named directories that matches a reader's patterns."""
    out: list[Path] = []
    for item in paths:
        path = Path(item)
        out.extend([p for p in _regular_files(path) if _matches(p, readers)] if path.is_dir() else [path])
    return out


def unmatched_files(paths: Iterable[str | Path], readers: Sequence[Reader]) -> list[Path]:
    """The files under named directories whose names match no reader's pattern (read if sniffing takes them)."""
    return [p for item in paths if Path(item).is_dir() for p in _regular_files(Path(item)) if not _matches(p, readers)]


def choose_reader(path: Path, readers: Sequence[Reader]) -> Reader:
    """The first reader that sniffs ``path``; ReaderError when ``path`` fails
    :func:`~specclip_core.data.inputs.verify` (not a regular file, empty, a damaged gzip file) or
    when no reader sniffs it (check ``sniff``)."""
    verify(path)
    for reader in readers:
        if reader.sniff(path):
            return reader
    raise ReaderError(path, f"no reader recognises this file (tried {', '.join(r.name for r in readers)})", check="sniff")


def finite_or_masked(spectra: Spectra) -> tuple[Spectra, dict[int, str]]:
    """Preprocessed spectra with every non-finite flux or ivar pixel masked (flux 0, ivar 0), and
    the rows that cannot be kept (non-finite statistics, or no usable pixel left) with the reason."""
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(spectra.flux) | ~np.isfinite(spectra.ivar)
    mask = spectra.mask | bad
    unusable = {}
    if spectra.stats is not None:
        bad_stats = np.flatnonzero(~np.isfinite(spectra.stats).all(axis=1))
        unusable.update({int(i): "non-finite statistics after preprocessing (overflow?)" for i in bad_stats})
    newly_empty = mask.all(axis=1) & bad.any(axis=1)
    for i in np.flatnonzero(newly_empty):
        unusable.setdefault(int(i), "no finite flux and ivar after preprocessing (overflow?)")
    if not bad.any():
        return spectra, unusable
    flux, ivar = np.where(bad, 0.0, spectra.flux), np.where(mask, 0.0, spectra.ivar)
    return Spectra(spectra.wavelength, flux, ivar, mask, spectra.ids, spectra.meta, spectra.stats), unusable


def preprocess_checked(
    modality: Modality, raw: Spectra, batch: int = 4096, progress: bool = True
) -> tuple[Spectra | None, list[tuple[str, str, str, int]]]:
    """Preprocess in batches; a batch that fails is redone spectrum by spectrum to isolate the bad
    ones. Returns the finite spectra (see :func:`finite_or_masked`) and (id, reason, check, row of
    ``raw``) of the rest."""
    parts, rejected = [], []

    def keep(done: Spectra, first_row: int) -> None:
        done, unusable = finite_or_masked(done)
        rejected.extend((str(done.ids[i]), reason, "finite", first_row + i) for i, reason in unusable.items())
        parts.append(done.subset(np.setdiff1d(np.arange(len(done)), list(unusable))) if unusable else done)

    with progress_bar(len(raw), f"preprocessing {modality.name}", "spectrum", disable=not progress) as bar:
        for start in range(0, len(raw), batch):
            chunk = raw.subset(slice(start, start + batch))
            try:
                keep(modality.preprocess(chunk), start)
            except ValueError:
                for row in range(len(chunk)):
                    one = chunk.subset([row])
                    try:
                        keep(modality.preprocess(one), start + row)
                    except ValueError as error:
                        rejected.append((str(one.ids[0]), str(error), "preprocess", start + row))
            bar.update(len(chunk))
    parts = [p for p in parts if len(p)]
    return (Spectra.concatenate(parts) if parts else None), rejected


def preprocess_robustly(
    modality: Modality, raw: Spectra, batch: int = 4096, progress: bool = True
) -> tuple[Spectra | None, list[tuple[str, str]]]:
    """:func:`preprocess_checked`, with the rejected as (id, reason)."""
    done, rejected = preprocess_checked(modality, raw, batch, progress)
    return done, [(sid, reason) for sid, reason, _, _ in rejected]

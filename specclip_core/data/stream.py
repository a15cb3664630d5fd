"""Inputs read and preprocessed in chunks: what ingest and predict hold at once is one chunk of
spectra, whatever the size of the files.

A :class:`SpectraStream` reads each file through its reader's
:meth:`~specclip_core.interfaces.Reader.read_chunks`, gathers raw pieces until ``chunk`` spectra
are waiting, preprocesses them and yields a :class:`Batch`: the preprocessed spectra and, per row,
the index of the file it came from. Files it cannot read become problems; a file that fails after
some of its pieces were yielded is listed in :attr:`SpectraStream.failed`, and the consumer drops
those rows (so a file is taken whole or not at all).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from specclip_core.components import get_reader, readers_for
from specclip_core.errors import ReaderError, SpecCLIPError
from specclip_core.interfaces import Modality, Spectra
from specclip_core.util import progress_bar

DEFAULT_CHUNK = 4096
"""Spectra held at once by ingest and predict; memory is about this times the bytes of one raw
spectrum as its reader builds it (for a Gaia XP continuous table, about 0.5 MB per spectrum while
its text is parsed)."""

FILE_COLUMN = "__file__"


@dataclass
class Batch:
    """Preprocessed spectra and, per row, the index (in :attr:`SpectraStream.files`) of its file."""

    spectra: Spectra
    files: np.ndarray


class SpectraStream:
    """Iterate over the spectra of files in preprocessed :class:`Batch` es of about ``chunk`` spectra.

    ``on_raw(path, spectra)`` may change or refuse (ReaderError) each raw piece before preprocessing.
    After iterating: ``problems`` holds (file, id, reason, check) of every rejected file and spectrum,
    ``unrecognised`` the files found in directories that no reader takes, ``failed`` the indices of
    files rejected after some of their rows were yielded, ``n_read`` the raw spectra read.
    """

    def __init__(
        self,
        paths: Iterable[str | Path],
        modality: Modality,
        reader: str | None = None,
        chunk: int = DEFAULT_CHUNK,
        progress: bool = True,
        on_raw: Callable[[Path, Spectra], Spectra] | None = None,
    ):
        from specclip_core.data.ingest import expand_paths, unmatched_files

        if chunk < 1:
            raise SpecCLIPError(f"chunk must be at least 1 spectrum, got {chunk}")
        self.modality, self.chunk, self.progress, self.on_raw = modality, chunk, progress, on_raw
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

    def __iter__(self) -> Iterator[Batch]:
        waiting: list[tuple[int, Spectra]] = []
        with progress_bar(len(self.files), "reading", "file", disable=not self.progress) as bar:
            for index in range(len(self.files)):
                pieces, yielded = self._pieces(index), False
                while True:
                    try:
                        raw = next(pieces, None)
                    except Exception as error:  # a reader bug must not stop a million-file ingest
                        check, reason = (error.check, error.reason) if isinstance(error, ReaderError) else ("read", f"{type(error).__name__}: {error}")
                        self._reject(index, reason, check, yielded)
                        waiting = [(i, part) for i, part in waiting if i != index]
                        break
                    if raw is None:
                        self.n_files_read += 1
                        break
                    waiting.append((index, raw))
                    if sum(len(part) for _, part in waiting) >= self.chunk:
                        yielded = True
                        yield from self._preprocess(waiting)
                        waiting = []
                bar.update(1)
            if waiting:
                yield from self._preprocess(waiting)

    def _pieces(self, index: int) -> Iterator[Spectra]:
        """The raw pieces of file ``index``, each with its file index in meta (ReaderError from the reader)."""
        from specclip_core.data.ingest import choose_reader

        path = self.files[index]
        for raw in choose_reader(path, self.readers).read_chunks(path, self.chunk):
            raw = self.on_raw(path, raw) if self.on_raw else raw
            raw.meta[FILE_COLUMN] = np.full(len(raw), index)
            yield raw

    def _reject(self, index: int, reason: str, check: str, yielded: bool) -> None:
        path = str(self.files[index])
        if self._by_content[index] and check == "sniff":
            self.unrecognised.append(path)
            return
        self.problems.append((path, "", reason, check))
        if yielded:
            self.failed.add(index)

    def _preprocess(self, waiting: list[tuple[int, Spectra]]) -> Iterator[Batch]:
        from specclip_core.data.ingest import preprocess_checked

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

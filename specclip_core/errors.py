"""Errors raised by specclip, each saying what was wrong and where."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path


class SpecCLIPError(Exception):
    """Base class of every error specclip raises on purpose."""


class UnknownComponentError(SpecCLIPError, KeyError):
    """A component name that no installed plugin registers."""

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        self.kind, self.name, self.known = kind, name, sorted(known)
        listed = ", ".join(self.known) if self.known else "none (is the plugin that provides it installed?)"
        super().__init__(f"unknown {kind} {name!r}; known {kind} names: {listed}")

    def __str__(self) -> str:  # KeyError would quote the whole message
        return self.args[0]


class DuplicateComponentError(SpecCLIPError):
    """Two plugins registered the same (kind, name)."""


class SpecError(SpecCLIPError, ValueError):
    """An invalid run spec: one line per problem, each with the path of the offending field."""

    def __init__(self, source: str | Path | None, problems: Sequence[tuple[str, str]]):
        self.source = str(source) if source is not None else "<spec>"
        self.problems = list(problems)
        lines = [f"{self.source}: invalid run spec ({len(self.problems)} problem(s))"]
        lines += [f"  {path or '<root>'}: {message}" for path, message in self.problems]
        super().__init__("\n".join(lines))


class ReaderError(SpecCLIPError, ValueError):
    """A file that cannot be read as spectra: names the file, says why and which check failed
    (``check``: "read" by default; the core's own checks are listed in :mod:`specclip_core.data.inputs`)."""

    def __init__(self, path: str | Path, reason: str, check: str = "read"):
        self.path, self.reason, self.check = str(path), reason, check
        super().__init__(f"{self.path}: {reason}")


class StoreError(SpecCLIPError):
    """A spectral store that is missing, incomplete or inconsistent with what was asked."""


class DatasetError(SpecCLIPError):
    """A dataset that cannot be fetched or verified."""


class CatalogueError(SpecCLIPError):
    """An embedding catalogue or index that is missing, damaged, or not what a command expected."""

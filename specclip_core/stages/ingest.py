"""The ``ingest`` stage: build a store from local files inside a run (later stages read it with
``data: {stage: <this stage>}``)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pydantic import Field

from specclip_core.components import readers_for
from specclip_core.data.ingest import DuplicatePolicy, ingest_files, read_label_table
from specclip_core.data.schema import csv_columns
from specclip_core.data.stream import DEFAULT_CHUNK, expand_paths, unmatched_files
from specclip_core.interfaces import Stage
from specclip_core.rundir import STORE
from specclip_core.runner import StageContext
from specclip_core.spec import InputPath, ModalityName, SpecModel
from specclip_core.util import atomic_write_text


class IngestConfig(SpecModel):
    """Read files of one modality, preprocess them, join a label table and write the stage's store."""

    modality: ModalityName = Field(description="registered modality name or alias of the files")
    paths: list[InputPath] = Field(min_length=1, description="files or directories (relative to the working directory)")
    labels: InputPath | None = Field(None, description="CSV of labels joined on the spectrum id")
    id_column: str = Field("id", description="column of the labels CSV that holds the spectrum id")
    reader: str | None = Field(None, description="force a reader (default: sniff each file)")
    duplicates: DuplicatePolicy = Field(
        "first", description="an id held by several spectra: keep the first (file order), the best S/N, or reject all copies"
    )
    chunk: int = Field(DEFAULT_CHUNK, ge=1, description="spectra read and preprocessed at a time: memory stays about this many raw spectra, whatever the inputs' size")
    simulated: bool | None = Field(
        None,
        description="every spectrum is simulated (true) or observed (false); default: each file's own flag "
        "(a reader's meta 'simulated'), else observed",
    )


def files_fingerprint(files: list[Path]) -> str:
    """A hash of the names, sizes and modification times of ``files`` (so edited inputs rerun a stage)."""
    digest = hashlib.sha256()
    for path in files:
        stat = path.stat() if path.exists() else None
        digest.update(f"{path}|{stat.st_size if stat else -1}|{stat.st_mtime_ns if stat else -1}\n".encode())
    return digest.hexdigest()


class IngestStage(Stage):
    """Build a store from local files (read, preprocess, join labels, report)."""

    config: IngestConfig

    def fingerprint(self) -> str:
        readers = list(readers_for(self.config.modality))
        files = expand_paths(self.config.paths, readers) + unmatched_files(self.config.paths, readers)
        return files_fingerprint(files + ([Path(self.config.labels)] if self.config.labels else []))

    def labels_written(self) -> list[str] | None:
        """The readers' meta columns and the labels CSV's columns, when the readers declare theirs."""
        config = self.config
        readers = [r for r in readers_for(config.modality) if config.reader in (None, r.name)]
        table = csv_columns(config.labels) if config.labels else []
        if not readers or table is None or any(reader.meta_columns is None for reader in readers):
            return None
        return sorted({c for reader in readers for c in reader.meta_columns} | (set(table) - {config.id_column}))

    def run(self, context: StageContext) -> dict[str, Any]:
        config: IngestConfig = context.config
        labels = read_label_table(config.labels, text_columns=[config.id_column]) if config.labels else None
        report = ingest_files(
            config.paths, config.modality, context.out_dir / STORE, reader=config.reader, labels=labels, id_column=config.id_column,
            progress=context.progress, simulated=config.simulated, labels_source=config.labels or "labels", duplicates=config.duplicates, chunk=config.chunk,
            overwrite=True,  # the stage's own working directory: a store left by a run killed after writing it (--resume)
        )
        report.store = STORE  # relative to the stage directory, which is renamed when the stage finishes
        atomic_write_text(context.out_dir / "ingest_report.md", "```\n" + report.summary() + "\n```\n")
        summary = asdict(report)
        atomic_write_text(context.out_dir / "ingest_report.json", json.dumps(summary, indent=2))
        listed = ("skipped_files", "rejected_spectra", "labels", "problems", "unrecognised_files", "duplicates")
        return {k: v for k, v in summary.items() if k not in listed} | {
            "n_unrecognised_files": len(report.unrecognised_files),
            "n_duplicated_ids": len(report.duplicates),
            "n_skipped_files": len(report.skipped_files),
            "n_rejected_spectra": len(report.rejected_spectra),
            "labels": None if report.labels is None else {k: v for k, v in asdict(report.labels).items() if k != "duplicated_ids"},
        }

"""Embed spectra of one modality with a finished run's stage into a catalogue (see :mod:`.catalogue`).

The inputs (stores first, by rows; then files, through a
:class:`~specclip_core.data.stream.SpectraStream` as ``specclip predict`` reads them) are cut into
numbered chunks of about ``chunk`` spectra, always the same way. Each process embeds its chunks
(chunk ``c`` belongs to rank ``c % world_size`` under torchrun; every chunk to a lone process) into a
part catalogue next to the output, committing one chunk at a time. ``resume`` continues the parts a
killed run left: committed chunks are skipped (a store's rows are not even read; files are read again
up to the stop point, since a file's chunks are only known by reading). When every part is done, rank
0 merges them in chunk order into the output, so a resumed run, a one-process run and a torchrun run
write the same bytes. Rows of a file that failed part-way are dropped at the merge (a file is taken
whole or not at all).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from specclip_core.components import get_modality
from specclip_core.data.splits import SPLITS, split_rows
from specclip_core.data.store import SpectralStore, is_store, replace_directory
from specclip_core.data.stream import DEFAULT_CHUNK, SpectraStream
from specclip_core.errors import CatalogueError, SpecCLIPError
from specclip_core.interfaces import Spectra
from specclip_core.nn.embedders import load_embedder
from specclip_core.retrieval.catalogue import ROW_CHUNK, Catalogue, is_catalogue
from specclip_core.rundir import RunDir, encoder_dir
from specclip_core.util import progress_bar, sha256_file

PARTS = ("full", "shared", "private")


@dataclass
class EmbedReport:
    """What :func:`embed_catalogue` did (on rank 0: the merged catalogue; elsewhere: this rank's part)."""

    output: str
    n_rows: int = 0
    width: int = 0
    stage: str = ""
    modality: str = ""
    resumed_rows: int = 0
    rank: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class Chosen:
    """The embedder an embed uses: run, stage, modality, part and what the stage saved."""

    run: RunDir
    stage: str
    modality: str
    part: str
    embedder: Any
    width: int
    parts: dict[str, int]
    prefix: dict[str, Any] | None = None
    """``{"width", "of", "ordered_widths"}`` when only the first ``width`` dimensions are kept."""


def choose_embedder(
    run_dir: str | Path,
    modality: str | None,
    stage: str | None,
    part: str = "full",
    inputs: list[str] | None = None,
    width: int | None = None,
) -> Chosen:
    """The embedder of ``stage`` (default: the last finished stage in the spec with one for the
    modality) for ``modality`` (default: the one the inputs hold), giving ``part``, or its first
    ``width`` dimensions (an ordered embedding's shared part only)."""
    from specclip_core.predict import input_modalities

    run = RunDir(run_dir)
    if not (run.path / "spec.yaml").exists():
        raise SpecCLIPError(f"{run.path}: not a run directory (no spec.yaml); give the directory 'specclip run' wrote")
    if modality is None:
        found = sorted(m for m in input_modalities(inputs or []) if run.encoder_stages(m))
        if len(found) != 1:
            raise SpecCLIPError(
                f"{', '.join(inputs or [])}: cannot tell which modality to embed "
                f"(the inputs hold {found or 'none the run embeds'}); pass --modality"
            )
        modality = found[0]
    modality = get_modality(modality).name
    stages = run.encoder_stages(modality)
    if not stages:
        raise SpecCLIPError(f"{run.path}: no finished stage saved an embedder for {modality!r}")
    if stage is None:
        stage = stages[-1]
    elif stage not in stages:
        raise SpecCLIPError(f"{run.path}: stage {stage!r} has no finished embedder for {modality!r}; stages that have one: {stages}")
    if part not in PARTS:
        raise SpecCLIPError(f"part must be one of {list(PARTS)}, got {part!r}")
    embedder = load_embedder(encoder_dir(run.stage(stage), modality))
    parts = getattr(embedder, "parts", {"full": embedder.embed_dim})
    if part not in parts:
        raise SpecCLIPError(
            f"{run.path}: stage {stage!r} embeds {modality} into the parts {sorted(parts)}, not {part!r} "
            "(shared and private parts come from an align stage; private from one with private_dim > 0)"
        )
    parts = {name: int(size) for name, size in parts.items()}
    if width is None:
        return Chosen(run, stage, modality, part, embedder, parts[part], parts)
    where = f"{run.path}: stage {stage!r}"
    return Chosen(run, stage, modality, part, embedder, width, parts, prefix_of(where, embedder, part, parts, width))


def prefix_of(where: str, embedder: Any, part: str, parts: dict[str, int], width: int) -> dict[str, Any]:
    """What a ``width``-dimension prefix of ``part`` keeps; an error unless the embedding is ordered
    and the part is its shared one."""
    ordered = getattr(embedder, "ordered_widths", None)
    if not ordered:
        raise SpecCLIPError(
            f"{where} was not trained with ordered embeddings (an align stage with 'ordered: {{widths: [...]}}'), "
            f"so its first {width} dimensions are not an embedding of their own; "
            "--width needs an ordered embedding (leave --width out for the whole one)"
        )
    if part == "private" or (part == "full" and "private" in parts):
        raise SpecCLIPError(f"{where}: --width keeps a prefix of the shared part, not of the {part!r} part; pass --part shared")
    if not 1 <= width <= parts["shared"]:
        raise SpecCLIPError(f"{where}: --width must be in 1..{parts['shared']} (the shared width), got {width}")
    return {"width": width, "of": parts["shared"], "ordered_widths": list(ordered)}


def embed_vectors(chosen: Chosen, spectra: Spectra, device: Any = "cpu") -> np.ndarray:
    """The chosen part's float32 embeddings of preprocessed ``spectra``."""
    extra = {} if chosen.part == "full" else {"part": chosen.part}
    vectors = chosen.embedder.embed(spectra.flux, spectra.stats, device=device, **extra)
    if chosen.prefix is not None:
        vectors = vectors[:, : chosen.prefix["width"]]
    return np.ascontiguousarray(vectors, dtype=np.float32)


def _describe_inputs(stores: list[Path], files: list[Path], split: str | None) -> list[dict[str, Any]]:
    described = []
    for path in stores:
        store = SpectralStore.open(path)
        entry = {"path": str(path.absolute()), "kind": "store", "rows": len(store), "fingerprint": store.fingerprint}
        described.append(entry | ({"split": split, "split_rows": len(split_rows(store.ids, split))} if split else {}))
    for path in files:
        entry: dict[str, Any] = {"path": str(path.absolute()), "kind": "file"}
        if path.is_file():
            entry |= {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
        described.append(entry)
    return described


def _label_columns(stores: list[Path], has_files: bool) -> dict[str, str]:
    """The label columns every input store has (none when files are among the inputs)."""
    if not stores or has_files:
        return {}
    columns = [SpectralStore.open(p).label_columns for p in stores]
    return {c: kind for c, kind in columns[0].items() if all(other.get(c) == kind for other in columns[1:])}


class _Chunks:
    """The inputs in numbered chunks: (chunk index, spectra or None when skipped, sources, file index, labels);
    of each store only the rows of ``split`` when one is given."""

    def __init__(
        self, stores: list[Path], files: list[Path], modality: str, chunk: int, labels: list[str], progress: bool, split: str | None = None
    ):
        self.stores, self.modality, self.chunk, self.labels, self.split = stores, modality, chunk, labels, split
        self.stream = SpectraStream(files, get_modality(modality), chunk=chunk, progress=progress) if files else None
        self.progress = progress

    def __iter__(self) -> Iterator[tuple[int, Callable[[], tuple[Spectra, np.ndarray, np.ndarray, dict]]]]:
        index = 0
        for path in self.stores:
            store = SpectralStore.open(path)
            source = str(path.absolute())
            selected = split_rows(store.ids, self.split)
            with progress_bar(len(selected), f"embedding {path.name}", "spectrum", disable=not self.progress) as bar:
                for start in range(0, len(selected), self.chunk):
                    rows = selected[start : start + self.chunk]

                    def read(store=store, rows=rows, source=source):
                        spectra = store.spectra(self.modality, rows=rows, labels=False)
                        labels = store.labels(self.labels, rows=rows) if self.labels else {}
                        return spectra, np.full(len(spectra), source), np.full(len(spectra), -1), labels

                    yield index, read
                    bar.update(len(rows))
                    index += 1
        if self.stream is not None:
            names = np.array([str(p.absolute()) for p in self.stream.files])
            for batch in self.stream:
                yield index, lambda batch=batch: (batch.spectra, names[batch.files], batch.files, {})
                index += 1

    @property
    def rejected(self) -> list[tuple[str, str]]:
        return [] if self.stream is None else self.stream.rejected

    @property
    def failed(self) -> set[int]:
        return set() if self.stream is None else self.stream.failed


def _split_inputs(paths: list[str]) -> tuple[list[Path], list[Path]]:
    missing = [p for p in paths if not os.path.lexists(p)]
    if missing:
        raise SpecCLIPError(
            f"{', '.join(missing)}: no such file or directory (inputs are spectrum files, directories of them, or spectral stores)"
        )
    stores = [Path(p) for p in paths if is_store(p)]
    return stores, [Path(p) for p in paths if not is_store(p)]


def parts_dir(output: Path) -> Path:
    """Where the parts of a catalogue being built live (removed once merged)."""
    return output.with_name(f".{output.name}.parts")


def embed_catalogue(
    run_dir: str | Path,
    paths: list[str],
    output: str | Path,
    modality: str | None = None,
    stage: str | None = None,
    part: str = "full",
    width: int | None = None,
    chunk: int = DEFAULT_CHUNK,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    on_commit: Callable[[int], None] | None = None,
    split: str | None = None,
) -> EmbedReport:
    """Embed the spectra of ``paths`` (files, directories, stores) with a run's stage into the catalogue
    ``output``; ``width`` keeps the first ``width`` dimensions of an ordered embedding's shared part;
    ``resume`` continues an interrupted embed of the same inputs. ``split`` (train, val or
    test) takes only the stores' rows of that split (:func:`~specclip_core.data.splits.split_rows`, as
    the run's stages split them); files cannot be split. ``on_commit(chunk)`` is called after each
    committed chunk (tests use it to stop a run part-way)."""
    from specclip_core.train.distributed import barrier, setup

    started = time.perf_counter()
    output = Path(output)
    if chunk < 1:
        raise SpecCLIPError(f"chunk must be at least 1 spectrum, got {chunk}")
    if os.path.lexists(output) and not overwrite:
        raise CatalogueError(f"{output}: already exists (pass --overwrite to replace it)")
    if os.path.lexists(output) and not is_catalogue(output):
        raise CatalogueError(f"{output}: exists and is not an embedding catalogue; refusing to replace it")
    stores, files = _split_inputs(paths)
    if split is not None and split not in SPLITS:
        raise SpecCLIPError(f"split must be one of {list(SPLITS)}, got {split!r}")
    if split is not None and files:
        raise SpecCLIPError(
            f"--split {split} selects rows of spectral stores, and {files[0]} is not one "
            "(ingest the files into a store with 'specclip data ingest' to embed one split of them)"
        )
    chosen = choose_embedder(run_dir, modality, stage, part, paths, width)
    labels = _label_columns(stores, bool(files))
    info, device = setup("auto")
    chunks = _Chunks(stores, files, chosen.modality, chunk, list(labels), progress and info.is_main, split)
    manifest = {
        "run": str(chosen.run.path.absolute()),
        "run_name": chosen.run.name(),
        "stage": chosen.stage,
        "stage_key": chosen.run.manifest(chosen.stage).get("key"),
        "embedder": type(chosen.embedder).__name__,
        "modality": chosen.modality,
        "part": chosen.part,
        "parts": chosen.parts,
        "width": chosen.width,
        "prefix": chosen.prefix,
        "chunk": chunk,
        **({"split": split} if split else {}),
        "inputs": _describe_inputs(stores, chunks.stream.files if chunks.stream else [], split),
    }
    part_path = parts_dir(output) / f"part-{info.rank}-of-{info.world_size}.zarr"
    catalogue = _open_part(part_path, manifest, labels, resume, info.world_size)
    resumed = len(catalogue)
    for index, read in chunks:
        if index % info.world_size != info.rank or index < catalogue.next_chunk:
            continue
        spectra, sources, file_index, label_values = read()
        columns = {
            "ids": spectra.ids,
            "source": sources,
            "embedding": embed_vectors(chosen, spectra, device),
            "chunk": np.full(len(spectra), index),
            "file": file_index,
        }
        catalogue.append(columns | {f"labels/{c}": v for c, v in label_values.items()}, next_chunk=index + 1)
        if on_commit is not None:
            on_commit(index)
    report = EmbedReport(str(output), len(catalogue), chosen.width, chosen.stage, chosen.modality, resumed, info.rank, chunks.rejected)
    barrier(info)
    if info.is_main:
        merged = _merge(output, info.world_size, manifest, labels, chunks.failed, chunks.rejected)
        report.n_rows = len(merged)
        if report.n_rows == 0:
            shutil.rmtree(merged.path)
            shutil.rmtree(parts_dir(output))
            first = "; ".join(f"{where}: {reason}" for where, reason in chunks.rejected[:3]) or "no input spectra found"
            raise SpecCLIPError(
                f"no {chosen.modality} spectrum embedded from {', '.join(paths)} ({len(chunks.rejected)} inputs rejected; {first})"
            )
        replace_directory(merged.path, output)
        shutil.rmtree(merged.path, ignore_errors=True)  # the catalogue it replaced, when there was one
        shutil.rmtree(parts_dir(output))
    report.seconds = time.perf_counter() - started
    return report


def _open_part(path: Path, manifest: dict[str, Any], labels: dict[str, str], resume: bool, world_size: int) -> Catalogue:
    """This rank's part: the one an interrupted run left when resuming the same embed, else a new one."""
    left = sorted(path.parent.glob("part-*.zarr")) if path.parent.exists() else []
    if resume and left:
        other = [p.name for p in left if not p.name.endswith(f"-of-{world_size}.zarr")]
        if other:
            raise CatalogueError(
                f"{path.parent}: the interrupted embed ran as {other[0].split('-of-')[1].removesuffix('.zarr')} process(es) "
                f"({other[0]}), this one as {world_size}; resume it with as many"
            )
        if path.exists():
            catalogue = Catalogue.open(path, mode="a")
            if catalogue.manifest != manifest:
                changed = sorted(k for k in manifest if catalogue.manifest.get(k) != manifest[k])
                raise CatalogueError(
                    f"{path}: the interrupted embed differs in {changed}; "
                    f"it cannot be resumed with these settings (remove {path.parent} to start again)"
                )
            catalogue.trim()
            return catalogue
    if path.exists():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return Catalogue.create(path, manifest["width"], labels, manifest, building=True)


def _merge(output: Path, world_size: int, manifest: dict[str, Any], labels: dict[str, str], failed: set[int], rejected: list) -> Catalogue:
    """The parts, in chunk order and without the rows of failed files, as one catalogue beside
    ``output`` (the caller renames it into place, then removes the parts)."""
    directory = parts_dir(output)
    parts = [Catalogue.open(directory / f"part-{rank}-of-{world_size}.zarr") for rank in range(world_size)]
    pieces = []  # (chunk, part, start, stop)
    for number, part in enumerate(parts):
        chunk_of_row = part.column("chunk")
        values, starts = np.unique(chunk_of_row, return_index=True)
        stops = np.append(starts[1:], len(chunk_of_row))
        pieces += [(int(c), number, int(a), int(b)) for c, a, b in zip(values, starts, stops, strict=True)]
    merging = output.with_name(f".{output.name}.merging")
    if merging.exists():
        shutil.rmtree(merging)
    final = Catalogue.create(merging, manifest["width"], labels, manifest, building=False)
    buffer: list[dict[str, np.ndarray]] = []
    waiting = 0
    for _, number, start, stop in sorted(pieces):
        rows = parts[number].rows(start, stop)
        keep = ~np.isin(rows.pop("file"), sorted(failed))
        rows.pop("chunk")
        buffer.append({name: values[keep] for name, values in rows.items()})
        waiting += int(keep.sum())
        if waiting >= ROW_CHUNK:
            final.append({name: np.concatenate([b[name] for b in buffer]) for name in buffer[0]})
            buffer, waiting = [], 0
    if buffer:
        final.append({name: np.concatenate([b[name] for b in buffer]) for name in buffer[0]})
    final.set_manifest(manifest | {"count": len(final), "rejected": [list(item) for item in rejected]})
    return final

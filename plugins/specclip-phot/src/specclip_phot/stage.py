"""The ``photometry`` stage: a store of the photometry modality built from the magnitude columns of
another store's label table (the apogee-xp library's by default), same ids, so that a ``join``
stage can put it beside that store's spectra."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field, model_validator

from specclip_core.api import STORE, DataSpec, ModalityLayout, SpecModel, SpectralStore, Stage, StageContext, get_modality
from specclip_phot.bands import BANDS, LIBRARY_COLUMNS
from specclip_phot.reader import photometry_spectra


class PhotometryConfig(SpecModel):
    """Which store to read and which of its label columns hold each band's magnitude (and error)."""

    like: DataSpec = Field(description="the store whose label columns hold the magnitudes: {dataset: NAME}, {store: PATH} or {stage: NAME}")
    bands: dict[str, str] = Field(default_factory=lambda: dict(LIBRARY_COLUMNS), description=f"band ({', '.join(BANDS)}) -> magnitude column (default: the apogee-xp library's)")
    errors: dict[str, str] = Field(default_factory=dict, description="band -> magnitude error column (bands without: the reader's default error)")

    @model_validator(mode="after")
    def _known_bands(self) -> PhotometryConfig:
        unknown = sorted((set(self.bands) | set(self.errors)) - set(BANDS))
        if unknown:
            raise ValueError(f"unknown bands {unknown}; the photometry modality has {list(BANDS)}")
        if not self.bands:
            raise ValueError("bands: give at least one band's magnitude column")
        return self


class PhotometryStage(Stage):
    """Write the stage's store: one photometry spectrum per row of ``like`` with any usable magnitude."""

    config: PhotometryConfig

    def inputs(self) -> dict[str, DataSpec]:
        return {"like": self.config.like}

    def labels_written(self) -> list[str] | None:
        return []

    def run(self, context: StageContext) -> dict[str, Any]:
        config = self.config
        source = context.input_store("like")
        missing = sorted(set([*config.bands.values(), *config.errors.values()]) - set(source.label_columns))
        if missing:
            raise ValueError(f"{source.path}: no label columns {missing} (its columns: {', '.join(source.label_columns)})")
        table = source.labels([*config.bands.values(), *config.errors.values()])
        raw = photometry_spectra(source.ids, {band: table[column] for band, column in config.bands.items()}, {band: table[column] for band, column in config.errors.items()})
        keep = ~raw.mask.all(axis=1)
        modality = get_modality("photometry")
        spectra = modality.preprocess(raw.subset(np.flatnonzero(keep)))
        with SpectralStore.build(context.out_dir / STORE, {modality.name: ModalityLayout.of(modality)}) as store:
            store.append(spectra.ids, {modality.name: spectra})
        return {"store": STORE, "n_rows": int(keep.sum()), "n_without_photometry": int((~keep).sum()), "bands": config.bands, "band_coverage": {band: float(np.isfinite(table[column]).mean()) for band, column in config.bands.items()}}

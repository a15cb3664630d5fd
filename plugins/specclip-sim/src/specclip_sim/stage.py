"""The ``simulate`` stage: :func:`~specclip_sim.paired.simulate_paired` inside a run, so a spec can go
from a registered dataset to a paired real + SIMULATED store (later stages read it with
``data: {stage: <this stage>}``)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from pydantic import Field

from specclip_core.api import STORE, DataSpec, ModalityName, SpecModel, Stage, StageContext, cached_store, get_modality, get_registry


class SimulateConfig(SpecModel):
    """Simulate ``modality`` spectra for the stars of ``like`` and pair them with its real spectra."""

    modality: ModalityName = Field(description="the modality to simulate, e.g. lamost_lrs")
    like: str | DataSpec = Field(
        description="registered dataset (fetched when needed) or store path whose stars and real spectra to use, or "
        "{stage: NAME}: the store an earlier stage wrote (e.g. another simulate stage: chained simulations, one rv per star)"
    )
    limit: int | None = Field(None, gt=0, description="only the first N stars of the dataset")
    snr: str | None = Field(
        None,
        description="label column of `like` holding each star's S/N to simulate at (e.g. sim_snr, the S/N of a chained "
        "simulation); default: drawn from the modality's calibration",
    )
    missing: str = Field("impute", pattern="^(impute|drop)$", description="stars with missing labels: impute and flag, or drop")
    workers: int | None = Field(None, gt=0, description="processes (default: the CPU cores available, at most 4)")


class SimulateStage(Stage):
    """Write the stage's store: the real spectra of ``like`` and SIMULATED ``modality`` spectra of the same stars."""

    config: SimulateConfig

    def inputs(self) -> dict[str, DataSpec]:
        """The stars to simulate: a registered dataset or a store; its fingerprint keys the stage."""
        like = self.config.like
        if isinstance(like, DataSpec):
            return {"like": like}
        return {"like": DataSpec(dataset=like) if like in get_registry().names("dataset") else DataSpec(store=like)}

    def labels_written(self) -> list[str] | None:
        """The source's label columns and those the simulation adds, when the source is on disk already."""
        from specclip_sim.paired import added_columns

        like = self.config.like
        source = None if isinstance(like, DataSpec) else cached_store(like)
        if source is None:
            return None
        return [*source.label_columns, *added_columns(source.modalities, get_modality(self.config.modality).name, source.label_columns)]

    def run(self, context: StageContext) -> dict[str, Any]:
        from specclip_sim.paired import DEFAULT_COLUMNS, simulate_paired

        config = self.config
        like = str(context.input_store("like").path) if isinstance(config.like, DataSpec) else config.like
        report = simulate_paired(
            config.modality,
            like=like,
            output=context.out_dir / STORE,
            seed=context.seed,
            limit=config.limit,
            missing=config.missing,
            columns={**DEFAULT_COLUMNS, "snr": config.snr} if config.snr else None,
            workers=config.workers,
            progress=context.progress,
        )
        summary = asdict(report)
        summary["store"] = STORE
        return summary

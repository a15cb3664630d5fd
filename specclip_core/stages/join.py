"""The ``join`` stage: join stores by id into one multi-modality store inside a run (later stages
read it with ``data: {stage: <this stage>}``); the work is :func:`specclip_core.data.join.join_stores`."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, StringConstraints, model_validator

from specclip_core.data.crossmatch import CrossMatch
from specclip_core.data.join import join_stores
from specclip_core.interfaces import Stage
from specclip_core.rundir import STORE
from specclip_core.runner import StageContext
from specclip_core.spec import DataSpec, InputPath, SpecModel
from specclip_core.stages.ingest import files_fingerprint
from specclip_core.util import atomic_write_text

REPORT = "join_report"
StoreName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")]
"""Letters, digits, '_' and '-': a store's name prefixes its clashing label columns."""


class CrossMatchSpec(SpecModel):
    """A CSV table pairing the stores' row ids, one row per object."""

    table: InputPath = Field(description="CSV file (relative to the working directory); ids are read as text, never through a float")
    columns: dict[str, str] = Field(description="store name -> the column of the table holding that store's row id (one per store)")


class JoinConfig(SpecModel):
    """Join stores by id (equal ids, or the rows of a cross-match table) into one store holding every
    modality of every store; rows are the objects found in every store."""

    stores: dict[StoreName, DataSpec] = Field(
        min_length=2,
        description="name -> a store to join: {dataset: NAME} (fetched), {store: PATH} or {stage: NAME} (an earlier stage's store); "
        "the names prefix clashing label columns",
    )
    crossmatch: CrossMatchSpec | None = Field(None, description="pair the stores' ids through this table (default: rows join on equal ids)")
    id_from: str | None = Field(None, description="the store whose ids the joined rows take (default: the first)")

    @model_validator(mode="after")
    def _names(self) -> JoinConfig:
        names = list(self.stores)
        if self.id_from is not None and self.id_from not in self.stores:
            raise ValueError(f"id_from {self.id_from!r} is not one of the stores {names}")
        if self.crossmatch is not None and set(self.crossmatch.columns) != set(names):
            missing, unknown = sorted(set(names) - set(self.crossmatch.columns)), sorted(set(self.crossmatch.columns) - set(names))
            raise ValueError(
                f"crossmatch.columns must give one column per store {names}"
                + (f"; no column for {missing}" if missing else "")
                + (f"; {unknown} are not stores" if unknown else "")
            )
        return self


def describe(data: DataSpec) -> str:
    return f"dataset {data.dataset}" if data.dataset else f"store {data.store}" if data.store else f"stage {data.stage}"


class JoinStage(Stage):
    """Write the stage's store (the join) and join_report.json / join_report.md."""

    config: JoinConfig

    def inputs(self) -> dict[str, DataSpec]:
        return dict(self.config.stores)

    def fingerprint(self) -> str | None:
        crossmatch = self.config.crossmatch
        return files_fingerprint([Path(crossmatch.table)]) if crossmatch else None

    def run(self, context: StageContext) -> dict[str, Any]:
        config = self.config
        stores = {name: context.input_store(name) for name in config.stores}
        crossmatch = CrossMatch.read(config.crossmatch.table, config.crossmatch.columns) if config.crossmatch else None
        sources = {name: describe(data) for name, data in config.stores.items()}
        report = join_stores(stores, context.out_dir / STORE, crossmatch, config.id_from, sources, overwrite=True)
        report.store = STORE  # relative to the stage directory, which is renamed when the stage finishes
        summary = asdict(report)
        atomic_write_text(context.out_dir / f"{REPORT}.json", json.dumps(summary, indent=2))
        atomic_write_text(context.out_dir / f"{REPORT}.md", report.markdown())
        return {
            "n_rows": report.n_rows,
            "id_from": report.id_from,
            "inputs": {name: {"rows": p.rows, "matched": p.matched, "simulated": p.simulated} for name, p in report.inputs.items()},
            "simulated_modalities": report.simulated_modalities,
            "crossmatch": None if report.crossmatch is None else {k: v for k, v in report.crossmatch.items() if k != "ambiguous_ids"},
        }

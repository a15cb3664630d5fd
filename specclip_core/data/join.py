"""Join stores by id into one store that holds every modality of every input.

Rows are the objects found in every input (an inner join: a row of a store holds every modality),
matched on equal ids or through a cross-match table (:mod:`specclip_core.data.crossmatch`, which
also states the policy on duplicated ids); the joined rows take the ids of one input (``id_from``).
Label columns are merged: on a clash the first input's column keeps the name and the others are
prefixed ``<input>_``. Every other input's row id is kept as the label ``<input>_id``, and each
simulated modality has a 0/1 label ``simulated_<modality>`` (see
:meth:`~specclip_core.data.store.SpectralStore.simulated_rows`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from specclip_core.data.crossmatch import CrossMatch, Matching, match_equal_ids, match_table
from specclip_core.data.ids import normalise_ids
from specclip_core.data.store import ModalityLayout, SpectralStore
from specclip_core.errors import SpecCLIPError
from specclip_core.interfaces import SIMULATED

POLICY = (
    "an id that is not unique (twice in one input, or paired with different partners by different rows of the cross-match table) "
    "joins nothing and is listed; a cross-match row identical to an earlier one is used once and counted"
)
PROVENANCE = ("dataset", "title", "licence", "citation", "source", "source_sha256")
"""Meta keys of each input kept in the joined store's ``joined_from``."""


@dataclass
class JoinedInput:
    """One input of a join: what it held, what matched, what it gave."""

    source: str
    rows: int
    matched: int
    modalities: list[str]
    columns: dict[str, str]  # its label column (or "(row id)") -> the joined store's column
    n_duplicated_ids: int
    duplicated_ids: list[str]
    simulated: dict[str, dict[str, int]]  # modality -> {"simulated": n, "real": n} among the matched rows


@dataclass
class JoinReport:
    store: str
    id_from: str
    n_rows: int
    inputs: dict[str, JoinedInput]
    crossmatch: dict[str, Any] | None
    columns: dict[str, str]  # the joined store's label column -> "<input>: <its column>"
    simulated_modalities: list[str]
    policy: str = POLICY
    seconds: float = 0.0

    def markdown(self) -> str:
        lines = [
            f"# Join: {self.n_rows} rows in {self.store} (ids from {self.id_from!r})",
            "",
            "| input | source | rows | matched | unmatched | duplicated ids | modalities | simulated / real (matched) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, part in self.inputs.items():
            simulated = "; ".join(f"{m}: {c['simulated']} / {c['real']}" for m, c in part.simulated.items())
            lines.append(
                f"| {name} | {part.source} | {part.rows} | {part.matched} | {part.rows - part.matched} | {part.n_duplicated_ids} "
                f"| {', '.join(part.modalities)} | {simulated} |"
            )
        if self.crossmatch is not None:
            c = self.crossmatch
            lines += [
                "",
                f"Cross-match table {c['table']} ({', '.join(f'{k}: {v}' for k, v in c['columns'].items())}): {c['rows_read']} rows read, "
                f"{c['rows_matched']} matched, {c['rows_unmatched']} unmatched (ids not in a store: "
                f"{', '.join(f'{k} {v}' for k, v in c['ids_not_in_store'].items())}), {c['rows_incomplete']} with an empty id, "
                f"{c['rows_repeated']} repeating an earlier row, {c['rows_ambiguous']} with an ambiguous id.",
            ]
            lines += [f"- ambiguous ids of {k}: {', '.join(v)}" for k, v in c["ambiguous_ids"].items() if v]
        lines += [f"- duplicated ids of {k}: {', '.join(p.duplicated_ids)}" for k, p in self.inputs.items() if p.duplicated_ids]
        lines += ["", f"Policy: {self.policy}.", "", "| column | from |", "|---|---|"]
        lines += [f"| {column} | {origin} |" for column, origin in self.columns.items()]
        lines += ["", f"Simulated modalities: {', '.join(self.simulated_modalities) or 'none'}."]
        return "\n".join(lines) + "\n"


@dataclass
class _Plan:
    """Where each label column of the joined store comes from."""

    renames: dict[str, dict[str, str]] = field(default_factory=dict)  # input -> its column -> joined column
    kinds: dict[str, str] = field(default_factory=dict)  # joined column -> kind
    origins: dict[str, str] = field(default_factory=dict)  # joined column -> "<input>: <its column>"

    def claim(self, column: str, kind: str, origin: str) -> None:
        if column in self.kinds:
            raise SpecCLIPError(f"label column {column!r} ({origin}) clashes with {column!r} ({self.origins[column]}); rename one of them")
        self.kinds[column], self.origins[column] = kind, origin


def _flag_columns(store: SpectralStore) -> set[str]:
    """The store's per-row simulated flags (read through ``simulated_rows``, not merged as labels)."""
    names = {f"{SIMULATED}_{m}" for m in store.modalities} | ({SIMULATED} if len(store.modalities) == 1 else set())
    return names & set(store.label_columns)


def plan_columns(stores: Mapping[str, SpectralStore], id_from: str, simulated: list[str]) -> _Plan:
    plan = _Plan()
    taken = set()
    for name, store in stores.items():
        plan.renames[name] = {}
        for column, kind in store.label_columns.items():
            if column in _flag_columns(store):
                continue
            joined = column if column not in taken else f"{name}_{column}"
            plan.claim(joined, kind, f"{name}: {column}")
            plan.renames[name][column] = joined
        taken |= set(plan.kinds)
    for name in stores:
        if name != id_from:
            plan.claim(f"{name}_id", "str", f"{name}: (row id)")
    for modality in simulated:
        owner = next(n for n, s in stores.items() if modality in s.modalities)
        plan.claim(f"{SIMULATED}_{modality}", "int", f"{owner}: (simulated flag of {modality})")
    return plan


def _check_inputs(stores: Mapping[str, SpectralStore], id_from: str, crossmatch: CrossMatch | None) -> None:
    if len(stores) < 2:
        raise SpecCLIPError(f"a join needs at least two stores, got {list(stores)}")
    if id_from not in stores:
        raise SpecCLIPError(f"id_from {id_from!r} is not one of the stores {list(stores)}")
    holder: dict[str, str] = {}
    for name, store in stores.items():
        for modality in store.modalities:
            if modality in holder:
                raise SpecCLIPError(
                    f"stores {holder[modality]!r} and {name!r} both hold modality {modality!r}; a joined store holds each modality once"
                )
            holder[modality] = name
    if crossmatch is not None and set(crossmatch.columns) != set(stores):
        missing, unknown = sorted(set(stores) - set(crossmatch.columns)), sorted(set(crossmatch.columns) - set(stores))
        raise SpecCLIPError(
            f"{crossmatch.source}: the cross-match columns must name one column per store {list(stores)}"
            + (f"; no column given for {missing}" if missing else "")
            + (f"; {unknown} are not stores of the join" if unknown else "")
        )


def _inputs(
    stores: Mapping[str, SpectralStore], matching: Matching, sources: Mapping[str, str], flags: Mapping[str, np.ndarray], plan: _Plan
) -> dict[str, JoinedInput]:
    out = {}
    for name, store in stores.items():
        columns = dict(plan.renames[name])
        columns.update({"(row id)": f"{name}_id"} if f"{name}_id" in plan.kinds else {})
        out[name] = JoinedInput(
            source=sources.get(name, str(store.path)),
            rows=len(store),
            matched=len(matching.rows[name]),
            modalities=store.modalities,
            columns=columns,
            n_duplicated_ids=matching.n_duplicated_ids[name],
            duplicated_ids=matching.duplicated_ids[name],
            simulated={m: {"simulated": int(flags[m].sum()), "real": int((~flags[m]).sum())} for m in store.modalities},
        )
    return out


def _provenance(store: SpectralStore) -> dict[str, Any]:
    meta = store.meta
    return {k: meta[k] for k in PROVENANCE if k in meta}


def join_stores(
    stores: Mapping[str, SpectralStore],
    output: str | Path,
    crossmatch: CrossMatch | None = None,
    id_from: str | None = None,
    sources: Mapping[str, str] | None = None,
    overwrite: bool = False,
    chunk_rows: int = 2048,
) -> JoinReport:
    """Write the join of ``stores`` (name -> store, in order) at ``output`` and return its report.
    ``sources`` says where each input came from (for the report; default its path)."""
    started = time.perf_counter()
    id_from = id_from or next(iter(stores))
    _check_inputs(stores, id_from, crossmatch)
    ids = {name: store.ids for name, store in stores.items()}
    keys = {name: normalise_ids(ids[name], f"{store.path}: ids") for name, store in stores.items()}
    matching = match_table(keys, crossmatch, id_from) if crossmatch is not None else match_equal_ids(keys, id_from)
    rows = matching.rows
    n = len(rows[id_from])
    flags = {m: store.simulated_rows(m, rows[name]) for name, store in stores.items() for m in store.modalities}
    simulated = [m for name, store in stores.items() for m in store.modalities if m in store.simulated_modalities or flags[m].any()]
    plan = plan_columns(stores, id_from, simulated)
    inputs = _inputs(stores, matching, sources or {}, flags, plan)
    report = JoinReport(str(output), id_from, n, inputs, matching.crossmatch, plan.origins, simulated)
    if n == 0:
        raise SpecCLIPError("the join matched no row:\n" + report.markdown())
    layouts = {m: ModalityLayout(s.wavelength(m), s.stats_names(m)) for s in stores.values() for m in s.modalities}
    attrs = {
        "simulated_modalities": simulated,
        "joined_from": {
            name: {**asdict(part), "fingerprint": stores[name].fingerprint, "meta": _provenance(stores[name])} for name, part in inputs.items()
        },
        "join": {"id_from": id_from, "crossmatch": matching.crossmatch, "policy": POLICY},
    }
    with SpectralStore.build(output, layouts, plan.kinds, attrs, overwrite=overwrite) as out:
        for start in range(0, n, chunk_rows):
            part = slice(start, start + chunk_rows)
            blocks, labels = {}, {}
            for name, store in stores.items():
                chosen = rows[name][part]
                blocks.update({m: store.read(m, chosen) for m in store.modalities})
                values = store.labels(list(plan.renames[name]), chosen)
                labels.update({plan.renames[name][c]: v for c, v in values.items()})
                if name != id_from:
                    labels[f"{name}_id"] = ids[name][chosen]
            labels.update({f"{SIMULATED}_{m}": flags[m][part].astype(np.int64) for m in simulated})
            out.append(ids[id_from][rows[id_from][part]], blocks, labels)
    report.seconds = round(time.perf_counter() - started, 3)
    return report

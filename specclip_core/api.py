"""The plugin API: everything a plugin may import from the core, and nothing else.

A plugin (its package and its tests) imports from here only (its tests may also use
:mod:`specclip_core.testing`); a test enforces it for the shipped plugins. Anything not listed is
internal and may change without notice. The contracts themselves are documented where they are
defined, :mod:`specclip_core.interfaces` (what a modality, reader, writer, encoder, head, embedder,
objective and stage must do) and :mod:`specclip_core.hookspecs` (the hooks).

Groups:

- contracts: :class:`Spectra`, :class:`Modality`, :class:`Instrument`, :class:`Reader`,
  :class:`Writer`, :class:`Tokenizer`, :class:`Encoder`, :class:`EncoderOutput`, :class:`Projection`,
  :class:`Decoder`, :class:`Head`, :class:`HeadLayout`, :class:`LabelledInputs`, :class:`Embedder`,
  :class:`Objective`, :class:`ObjectiveConfig` (and :func:`embed_all`, the alignment embeddings of a
  batch, computed once for all objectives), :class:`Stage`, :class:`StageContext`;
- registering: :data:`hookimpl`, :class:`ComponentList`, :class:`Component`, and looking up what is
  registered: :func:`get_registry`, :func:`get_modality`, :func:`get_reader`, :func:`readers_for`,
  :func:`create_component`, :func:`list_components`, :func:`get_plugin_manager`,
  :func:`refresh_registry` (after registering a plugin in-process);
- specs: :class:`SpecModel` (base of a stage's settings), :data:`ModalityName`, :data:`InputPath` (a
  path checked at validate), :class:`TrainSpec`,
  :class:`DataSpec` (a store a stage reads, e.g. in :meth:`Stage.inputs`),
  the component specs, :func:`load_spec`, :func:`validate_spec`, :func:`run_spec`;
- data: :class:`SpectralStore`, :class:`ModalityLayout`, :func:`choose_reader`, :func:`read_files`,
  :func:`read_verified` and :func:`open_fits` (how a reader opens a file: regular files only, gzip
  CRC and FITS checksums verified), :func:`check_regular_file`, :func:`verify` (what is checked
  before any reader sniffs a file), :func:`primary_fits_header` (a FITS sniffer's header, read once), :func:`table_columns` (a binary table's columns, fast), :func:`table_layout` (its column definitions, made once per layout),
  :func:`preprocess_robustly`, :func:`ingest_files`, :func:`read_label_table`, :func:`fetch_dataset`,
  :func:`get_card`, :class:`DatasetCard`, :func:`cache_dir`, :func:`cached_store` (a store that is
  already on disk, fetching nothing); the run directory: :class:`RunDir`,
  :data:`STORE`, :func:`encoder_dir`; networks a plugin may load or build on: :class:`ModalityEncoder`;
- errors: :class:`SpecCLIPError`, :class:`ReaderError`, :class:`SpecError`, :class:`StoreError`,
  :class:`DatasetError`; helpers: :func:`progress_bar`, :func:`sha256_file`, :func:`atomic_write_text`.

Each name is imported from its module on first use (PEP 562), so that importing a plugin, which
``specclip --help`` does, costs no torch, zarr or matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

SOURCES: dict[str, tuple[str, ...]] = {
    "specclip_core.align.objectives": ("embed_all",),
    "specclip_core.components": ("Component", "ComponentList", "create_component", "get_modality", "get_reader", "get_registry", "list_components", "readers_for", "refresh_registry"),
    "specclip_core.data.cache": ("cache_dir",),
    "specclip_core.data.datasets": ("DatasetCard", "fetch_dataset", "get_card"),
    "specclip_core.data.inputs": ("check_regular_file", "open_fits", "primary_fits_header", "read_verified", "table_columns", "table_layout", "verify"),
    "specclip_core.data.ingest": ("ingest_files", "read_files", "read_label_table"),
    "specclip_core.data.stream": ("choose_reader", "preprocess_robustly"),
    "specclip_core.data.schema": ("cached_store",),
    "specclip_core.data.store": ("ModalityLayout", "SpectralStore"),
    "specclip_core.errors": ("DatasetError", "ReaderError", "SpecCLIPError", "SpecError", "StoreError"),
    "specclip_core.hookspecs": ("hookimpl",),
    "specclip_core.interfaces": (
        "Decoder", "Embedder", "Encoder", "EncoderOutput", "Head", "HeadLayout", "Instrument", "LabelledInputs", "Modality",
        "Objective", "ObjectiveConfig", "Projection", "Reader", "Spectra", "Stage", "Tokenizer", "Writer",
    ),
    "specclip_core.nn.modality_encoder": ("ModalityEncoder",),
    "specclip_core.plugins": ("get_plugin_manager",),
    "specclip_core.rundir": ("STORE", "RunDir", "encoder_dir"),
    "specclip_core.runner": ("StageContext", "run_spec"),
    "specclip_core.spec": (
        "DataSpec", "DecoderSpec", "EncoderSpec", "HeadSpec", "InputPath", "ModalityName", "ObjectiveSpec", "ProjectionSpec", "SpecModel", "TokenizerSpec",
        "TrainSpec", "load_spec", "validate_spec",
    ),
    "specclip_core.util": ("atomic_write_text", "progress_bar", "sha256_file"),
}
"""Module -> the names of the API it defines."""

_MODULE_OF = {name: module for module, names in SOURCES.items() for name in names}


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"specclip_core.api has no {name!r}; the plugin API is: {', '.join(__all__)}")
    value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "STORE",
    "Component",
    "ComponentList",
    "DatasetCard",
    "DataSpec",
    "DatasetError",
    "Decoder",
    "DecoderSpec",
    "Embedder",
    "Encoder",
    "EncoderOutput",
    "EncoderSpec",
    "Head",
    "HeadLayout",
    "HeadSpec",
    "InputPath",
    "Instrument",
    "LabelledInputs",
    "Modality",
    "ModalityEncoder",
    "ModalityLayout",
    "ModalityName",
    "Objective",
    "ObjectiveConfig",
    "ObjectiveSpec",
    "Projection",
    "ProjectionSpec",
    "Reader",
    "ReaderError",
    "RunDir",
    "SpecCLIPError",
    "SpecError",
    "SpecModel",
    "SpectralStore",
    "Spectra",
    "Stage",
    "StageContext",
    "StoreError",
    "Tokenizer",
    "TokenizerSpec",
    "TrainSpec",
    "Writer",
    "atomic_write_text",
    "cache_dir",
    "cached_store",
    "check_regular_file",
    "choose_reader",
    "create_component",
    "embed_all",
    "encoder_dir",
    "fetch_dataset",
    "get_card",
    "get_modality",
    "get_plugin_manager",
    "get_reader",
    "get_registry",
    "hookimpl",
    "ingest_files",
    "list_components",
    "load_spec",
    "open_fits",
    "preprocess_robustly",
    "primary_fits_header",
    "progress_bar",
    "read_files",
    "read_label_table",
    "read_verified",
    "readers_for",
    "refresh_registry",
    "run_spec",
    "sha256_file",
    "table_columns",
    "table_layout",
    "validate_spec",
    "verify",
]

"""The catalogue shipped with the core: dataset cards and run specs under ``specclip_registry``."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from specclip_core.hookspecs import hookimpl


def _registry_dir(sub: str) -> Path:
    return Path(str(files("specclip_registry") / sub))


@hookimpl
def specclip_register_datasets():
    from specclip_core.data.datasets import DatasetCard

    return [DatasetCard.from_toml(path) for path in sorted(_registry_dir("datasets").glob("*.toml"))]


@hookimpl
def specclip_register_specs():
    return [str(path) for path in sorted(_registry_dir("specs").glob("*.yaml"))]

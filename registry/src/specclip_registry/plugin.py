"""Registers the catalogue's dataset cards, run specs and pretrained models through the specclip hooks."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from specclip_core.api import hookimpl


def catalogue_dir(sub: str) -> Path:
    """``datasets``, ``specs`` or ``models`` inside the installed package."""
    return Path(str(files("specclip_registry") / sub))


@hookimpl
def specclip_register_datasets():
    from specclip_core.api import DatasetCard

    return [DatasetCard.from_toml(path) for path in sorted(catalogue_dir("datasets").glob("*.toml"))]


@hookimpl
def specclip_register_specs():
    return [str(path) for path in sorted(catalogue_dir("specs").glob("*.yaml"))]


@hookimpl
def specclip_register_models():
    return [str(card.parent) for card in sorted(catalogue_dir("models").glob("*/model.json"))]

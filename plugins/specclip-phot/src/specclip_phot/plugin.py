"""The plugin's hooks (entry point ``specclip: phot``): the ``photometry`` modality, its table
reader and the ``photometry`` stage. They import what they register when called."""

from __future__ import annotations

from specclip_core.api import hookimpl


@hookimpl
def specclip_register_modalities():
    from specclip_phot.modality import PhotometryModality

    return [PhotometryModality()]


@hookimpl
def specclip_register_readers():
    from specclip_phot.reader import PhotometryTableReader

    return [PhotometryTableReader()]


@hookimpl
def specclip_register_components():
    from specclip_core.api import ComponentList
    from specclip_phot.stage import PhotometryConfig, PhotometryStage

    components = ComponentList()
    components.register("stage", "photometry", PhotometryConfig, "a photometry store from a store's magnitude columns (same ids, to join)")(PhotometryStage)
    return list(components)

"""The specclip hooks of the DESI plugin (entry point ``desi`` in the ``specclip`` group).

They import what they register when called, so loading the plugin stays cheap.
"""

from __future__ import annotations

from importlib.resources import files

from specclip_core.api import hookimpl


@hookimpl
def specclip_register_modalities():
    from specclip_desi.modality import Desi

    return [Desi()]


@hookimpl
def specclip_register_readers():
    from specclip_desi.readers import DesiCoaddReader, DesiSpectraReader

    return [DesiCoaddReader(), DesiSpectraReader()]


@hookimpl
def specclip_register_writers():
    from specclip_desi.writer import DesiCoaddWriter

    return [DesiCoaddWriter()]


@hookimpl
def specclip_register_datasets():
    from specclip_core.api import DatasetCard

    cards = files("specclip_desi") / "datasets"
    return [DatasetCard.from_toml(str(path)) for path in sorted(cards.iterdir()) if path.name.endswith(".toml")]

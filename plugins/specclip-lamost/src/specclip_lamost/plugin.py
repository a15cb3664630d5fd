"""The specclip hooks of the LAMOST plugin (entry point ``lamost`` in the ``specclip`` group).

They import what they register when called, so loading the plugin stays cheap.
"""

from __future__ import annotations

from specclip_core.api import hookimpl


@hookimpl
def specclip_register_modalities():
    from specclip_lamost.modality import LamostLRS, LamostLRSFull

    return [LamostLRS(), LamostLRSFull()]


@hookimpl
def specclip_register_readers():
    from specclip_lamost.readers import LamostCoaddReader, LamostImageReader

    return [LamostCoaddReader(), LamostImageReader()]


@hookimpl
def specclip_register_writers():
    from specclip_lamost.writer import LamostCoaddWriter

    return [LamostCoaddWriter()]

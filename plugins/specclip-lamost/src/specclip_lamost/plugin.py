"""The specclip hooks of the LAMOST plugin (entry point ``lamost`` in the ``specclip`` group)."""

from __future__ import annotations

from specclip_core.api import hookimpl
from specclip_lamost.modality import LamostLRS
from specclip_lamost.readers import LamostCoaddReader, LamostImageReader
from specclip_lamost.writer import LamostCoaddWriter


@hookimpl
def specclip_register_modalities():
    return [LamostLRS()]


@hookimpl
def specclip_register_readers():
    return [LamostCoaddReader(), LamostImageReader()]


@hookimpl
def specclip_register_writers():
    return [LamostCoaddWriter()]

"""The plugin's hooks: the ``gaia_xp`` modality and the XP readers (entry point ``specclip: gaiaxp``)."""

from __future__ import annotations

from specclip_core.api import hookimpl
from specclip_gaiaxp.continuous import GaiaXPContinuousReader
from specclip_gaiaxp.library import ApogeeXPLibraryReader
from specclip_gaiaxp.modality import GaiaXPModality
from specclip_gaiaxp.sampled import GaiaXPSampledReader


@hookimpl
def specclip_register_modalities():
    return [GaiaXPModality()]


@hookimpl
def specclip_register_readers():
    return [ApogeeXPLibraryReader(), GaiaXPContinuousReader(), GaiaXPSampledReader()]

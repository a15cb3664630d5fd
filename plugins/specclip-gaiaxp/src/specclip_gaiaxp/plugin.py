"""The plugin's hooks: the ``gaia_xp`` modality and the XP readers (entry point ``specclip: gaiaxp``).

They import what they register when called, so loading the plugin stays cheap.
"""

from __future__ import annotations

from specclip_core.api import hookimpl


@hookimpl
def specclip_register_modalities():
    from specclip_gaiaxp.modality import GaiaXPModality

    return [GaiaXPModality()]


@hookimpl
def specclip_register_readers():
    from specclip_gaiaxp.continuous import GaiaXPContinuousReader
    from specclip_gaiaxp.library import ApogeeXPLibraryReader
    from specclip_gaiaxp.sampled import GaiaXPSampledReader

    return [ApogeeXPLibraryReader(), GaiaXPContinuousReader(), GaiaXPSampledReader()]

"""The alignment objectives and the aligned embedder, registered through the component hook (imported
when the registry asks for them)."""

from __future__ import annotations

from specclip_core.hookspecs import hookimpl


@hookimpl
def specclip_register_components():
    from specclip_core.align.embedder import AlignedEmbedder
    from specclip_core.align.objectives import components as objective_components
    from specclip_core.components import ComponentList

    components = ComponentList()
    for item in objective_components:
        components.add(item)
    components.register("embedder", "aligned", None, "a modality's branch of an alignment model: encoder then projection")(AlignedEmbedder)
    return list(components)

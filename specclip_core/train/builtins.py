"""The core's pretraining objectives, registered through the component hook (imported when the registry asks for them)."""

from __future__ import annotations

from specclip_core.hookspecs import hookimpl


@hookimpl
def specclip_register_components():
    from specclip_core.train.objectives import components

    return list(components)

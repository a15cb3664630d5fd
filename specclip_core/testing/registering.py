"""Registering components in-process for one test: the plugin's own hooks stay as they are."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from specclip_core.components import refresh_registry
from specclip_core.hookspecs import hookimpl
from specclip_core.plugins import get_plugin_manager


class _DatasetCards:
    def __init__(self, cards: Sequence[Any]):
        self.cards = list(cards)

    @hookimpl
    def specclip_register_datasets(self):
        return self.cards


@contextlib.contextmanager
def registered_datasets(cards: Sequence[Any], name: str = "test-dataset-cards") -> Iterator[None]:
    """Dataset cards registered by a throw-away plugin called ``name`` while the block runs."""
    manager = get_plugin_manager()
    manager.register(_DatasetCards(cards), name=name)
    refresh_registry()
    try:
        yield
    finally:
        manager.unregister(name=name)
        refresh_registry()

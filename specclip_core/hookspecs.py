"""Every hook a specclip plugin can implement.

A plugin is a module (or object) with functions marked ``@hookimpl`` whose names are below. It is
found through the ``specclip`` entry-point group of its distribution::

    [project.entry-points.specclip]
    mysurvey = "specclip_mysurvey.plugin"

Each ``specclip_register_*`` hook returns a list; the core gathers the lists of all plugins into
one registry (see :mod:`specclip_core.components`). The core's own built-ins use the same hooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from specclip_core.components import Component
    from specclip_core.data.datasets import DatasetCard
    from specclip_core.interfaces import Modality, Reader, Writer

PROJECT = "specclip"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def specclip_register_modalities() -> list[Modality]:
    """Modalities this plugin provides (instances of :class:`~specclip_core.interfaces.Modality`)."""


@hookspec
def specclip_register_components() -> list[Component]:
    """Named factories: encoders, tokenizers, projections, decoders, heads, objectives, stages."""


@hookspec
def specclip_register_readers() -> list[Reader]:
    """Readers of file formats (instances of :class:`~specclip_core.interfaces.Reader`)."""


@hookspec
def specclip_register_writers() -> list[Writer]:
    """Writers of native file formats (instances of :class:`~specclip_core.interfaces.Writer`)."""


@hookspec
def specclip_register_datasets() -> list[DatasetCard]:
    """Dataset cards: where a dataset comes from, its checksum, licence, columns and how to ingest it."""


@hookspec
def specclip_register_specs() -> list[str]:
    """Paths of run-spec files this plugin ships; each is runnable by its file stem (``specclip run NAME``)."""


@hookspec
def specclip_register_models() -> list[str]:
    """Paths of model directories this plugin ships (each written by ``specclip models export`` and
    holding its ``model.json`` card); each is usable by its card's name (``specclip predict --model NAME``).
    A directory whose card is missing or invalid is skipped with a warning naming the plugin; the
    plugin's other models and every other plugin stay usable."""


@hookspec
def specclip_add_commands(subparsers) -> None:
    """Add sub-commands to ``specclip`` and its groups: ``subparsers`` maps a group name (``"root"``
    for top-level commands, ``"data"``, ``"bench"``) to its ``argparse`` sub-parsers object. Set
    ``func`` on each new parser."""

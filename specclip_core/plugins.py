"""Plugin discovery: the core's built-ins plus every ``specclip`` entry point.

Set ``SPECCLIP_DISABLE_PLUGIN_AUTOLOAD=1`` to load only the built-ins (and whatever a program
registers itself with ``get_plugin_manager().register(...)``).
"""

from __future__ import annotations

import importlib
import os
from importlib.metadata import entry_points

import pluggy

from specclip_core import hookspecs
from specclip_core.errors import SpecCLIPError

ENTRY_POINT_GROUP = "specclip"
DISABLE_AUTOLOAD_ENV = "SPECCLIP_DISABLE_PLUGIN_AUTOLOAD"
BUILTIN_PLUGINS = (
    "specclip_core.nn.builtins",
    "specclip_core.train.builtins",
    "specclip_core.heads.builtins",
    "specclip_core.align.builtins",
    "specclip_core.stages",
)
IN_PROCESS = ("(registered in-process)", "")


_pm: pluggy.PluginManager | None = None
_dists: dict[str, tuple[str, str]] = {}


def _autoload_disabled() -> bool:
    return os.environ.get(DISABLE_AUTOLOAD_ENV, "").strip().lower() not in ("", "0", "false", "no")


def create_plugin_manager(load_entry_points: bool | None = None) -> pluggy.PluginManager:
    """A fresh plugin manager with the hookspecs, the built-ins and (unless disabled) the entry points."""
    from specclip_core import __version__

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for module_name in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(module_name), name=module_name)
        _dists[module_name] = ("specclip", __version__)
    if load_entry_points is None:
        load_entry_points = not _autoload_disabled()
    if load_entry_points:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
                continue
            try:
                plugin = ep.load()
            except Exception as error:  # a broken plugin must say which one it is
                dist = ep.dist.name if ep.dist else "?"
                raise SpecCLIPError(
                    f"plugin {ep.name!r} (entry point {ep.value!r} of distribution {dist!r}) failed to load: "
                    f"{type(error).__name__}: {error}. Set {DISABLE_AUTOLOAD_ENV}=1 to run without plugins."
                ) from error
            pm.register(plugin, name=ep.name)
            _dists[ep.name] = (ep.dist.name, ep.dist.version) if ep.dist else ("?", "?")
    return pm


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager (created on first use)."""
    global _pm
    if _pm is None:
        _pm = create_plugin_manager()
    return _pm


def reset_plugin_manager() -> None:
    global _pm
    _pm = None


def distribution_of(plugin: str) -> tuple[str, str]:
    """(distribution name, version) of a registered plugin; ``IN_PROCESS`` for one a program registered itself."""
    get_plugin_manager()
    return _dists.get(plugin, IN_PROCESS)

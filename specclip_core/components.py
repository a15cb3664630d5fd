"""The name -> factory registry, fed by the plugins' hooks.

Modelled on timm's ``register_model`` / ``create_model`` / ``list_models``: every buildable thing is a
:class:`Component` with a *kind* (``encoder``, ``tokenizer``, ``objective``, ``stage``, ...), a
*name*, a factory and an optional pydantic *config* model that validates its settings. A plugin
collects its components with a :class:`ComponentList` and returns them from
``specclip_register_components``::

    components = ComponentList()

    @components.register("encoder", "tiny_mlp", config=TinyMLPConfig)
    def tiny_mlp(config: TinyMLPConfig) -> Encoder: ...

    @hookimpl
    def specclip_register_components():
        return list(components)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pluggy
from pydantic import BaseModel, ValidationError

from specclip_core import interfaces
from specclip_core.errors import DuplicateComponentError, SpecCLIPError, SpecError, UnknownComponentError
from specclip_core.model_card import RegisteredModel

KINDS: dict[str, str] = {
    "modality": "factory() -> a Modality instance (from specclip_register_modalities)",
    "reader": "factory() -> a Reader instance (from specclip_register_readers)",
    "writer": "factory() -> a Writer instance (from specclip_register_writers)",
    "dataset": "factory() -> a DatasetCard (from specclip_register_datasets)",
    "model": "factory() -> a RegisteredModel: a shipped model directory and its card (from specclip_register_models)",
    "tokenizer": "a Tokenizer subclass; cls(config) with n_pixels and stats_names filled in by the core",
    "encoder": "an Encoder subclass; cls(config) with n_tokens and token_dim filled in by the core",
    "projection": "a Projection subclass; cls(config) with the encoder's sizes and shared/private dims filled in",
    "decoder": "a Decoder subclass; cls(config) with input and output sizes filled in",
    "head": "a Head subclass; cls(config) is untrained, cls.load(directory) restores a saved one",
    "objective": "an Objective subclass; cls(config)",
    "stage": "a Stage subclass; cls(config) with the stage's validated settings, then .run(context)",
    "embedder": "an Embedder subclass; cls.load(directory) restores one a stage saved (encoder.json 'type')",
}
"""Every component kind and what its registered factory is: one meaning per kind."""

_INTERFACE = {
    "modality": "Modality",
    "reader": "Reader",
    "writer": "Writer",
    "tokenizer": "Tokenizer",
    "encoder": "Encoder",
    "projection": "Projection",
    "decoder": "Decoder",
    "head": "Head",
    "objective": "Objective",
    "stage": "Stage",
    "embedder": "Embedder",
}
"""The :mod:`specclip_core.interfaces` class each kind's factory is or makes (by name: the network
contracts load torch when first asked for)."""
_INSTANCE_KINDS = ("modality", "reader", "writer", "dataset", "model")


def _interface(kind: str) -> type | None:
    """The :mod:`specclip_core.interfaces` class of ``kind`` (None for a kind without one)."""
    return getattr(interfaces, _INTERFACE[kind]) if kind in _INTERFACE else None


def check_kind(kind: str, name: str, factory: Any) -> None:
    """Reject an unknown kind, and a factory that is not what ``KINDS`` says for its kind."""
    if kind not in KINDS:
        raise SpecCLIPError(f"{name!r}: unknown component kind {kind!r}; kinds are {', '.join(KINDS)}")
    interface = _interface(kind)
    if interface is None or kind in _INSTANCE_KINDS:
        return
    if not (isinstance(factory, type) and issubclass(factory, interface)):
        raise SpecCLIPError(f"{kind} {name!r}: the registered factory must be a subclass of {interface.__name__} ({KINDS[kind]}), got {factory!r}")


@dataclass(frozen=True)
class Component:
    """A named factory. ``factory(config)`` builds it (``factory()`` when ``config`` is None)."""

    kind: str
    name: str
    factory: Callable[..., Any]
    config: type[BaseModel] | None = None
    description: str = ""

    def validate(self, params: Mapping[str, Any], context: Mapping[str, Any] | None = None) -> BaseModel | None:
        """Validate settings against this component's config model (unknown keys are errors)."""
        if self.config is None:
            if params:
                raise SpecError(None, [(k, f"{self.kind} {self.name!r} takes no settings") for k in params])
            return None
        return self.config.model_validate(dict(params), context=dict(context or {}))

    def build(self, config: BaseModel | None = None) -> Any:
        if self.kind in _INSTANCE_KINDS:
            return self.factory()
        return self.factory(config)


class ComponentList:
    """What one plugin registers; use ``register`` as a decorator, return ``list(self)`` from the hook."""

    def __init__(self) -> None:
        self._items: list[Component] = []

    def register(
        self, kind: str, name: str, config: type[BaseModel] | None = None, description: str = ""
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def decorate(factory: Callable[..., Any]) -> Callable[..., Any]:
            check_kind(kind, name, factory)
            doc = description or (factory.__doc__ or "").strip().split("\n")[0]
            self._items.append(Component(kind, name, factory, config, doc))
            return factory

        return decorate

    def add(self, component: Component) -> None:
        self._items.append(component)

    def __iter__(self) -> Iterator[Component]:
        return iter(self._items)


class Registry:
    """All components of all plugins, by kind and name, remembering which plugin gave each.

    The factories of ``specclip_register_components`` (networks, heads, objectives, stages: torch
    code) are asked for on the first use of one of their kinds, so that reading spectra (modalities,
    readers, writers, datasets, models) imports no torch."""

    def __init__(self) -> None:
        self._items: dict[str, dict[str, Component]] = {kind: {} for kind in KINDS}
        self._plugin_of: dict[tuple[str, str], str] = {}
        self._aliases: dict[str, str] = {}
        self._factory_hooks: list[Any] = []

    def _factories(self, kind: str | None = None) -> None:
        """Register what ``specclip_register_components`` gives, once, when ``kind`` (None: any) is one
        of its kinds. A hook that fails (or gives a duplicate) leaves the registry as it was, and the
        next use asks again, failing the same way."""
        if kind in _INSTANCE_KINDS or not self._factory_hooks:
            return
        given = Registry()
        for impl in self._factory_hooks:
            for item in impl.function() or []:
                component = _as_component(item, None)
                if component.kind in _INSTANCE_KINDS:
                    raise SpecCLIPError(f"plugin {impl.plugin_name!r}: specclip_register_components gave the {component.kind} {component.name!r}; register a {component.kind} with specclip_register_{component.kind}s")
                given.add(component, impl.plugin_name)
        for name, bucket in given._items.items():
            self._items[name].update(bucket)
        self._plugin_of.update(given._plugin_of)
        self._factory_hooks = []

    def add(self, component: Component, plugin: str = "") -> None:
        if component.kind in _INSTANCE_KINDS:
            check_kind(component.kind, component.name, None)
        else:
            check_kind(component.kind, component.name, component.factory)
        bucket = self._items[component.kind]
        if component.name in bucket:
            other = self._plugin_of[(component.kind, component.name)]
            raise DuplicateComponentError(
                f"{component.kind} {component.name!r} is registered twice: by plugin {other!r} and by {plugin!r}"
            )
        bucket[component.name] = component
        self._plugin_of[(component.kind, component.name)] = plugin

    def add_alias(self, alias: str, modality: str) -> None:
        self._aliases[alias] = modality

    def get(self, kind: str, name: str) -> Component:
        self._factories(kind)
        bucket = self._items.get(kind, {})
        if kind == "modality":
            name = self._aliases.get(name, name)
        if name not in bucket:
            raise UnknownComponentError(kind, name, bucket)
        return bucket[name]

    def is_modality(self, name: str) -> bool:
        """Whether ``name`` is a registered modality or an alias of one."""
        return name in self._items["modality"] or name in self._aliases

    def names(self, kind: str) -> list[str]:
        self._factories(kind)
        return sorted(self._items.get(kind, {}))

    def kinds(self) -> list[str]:
        self._factories()
        return [kind for kind, bucket in self._items.items() if bucket]

    def plugin_of(self, kind: str, name: str) -> str:
        return self._plugin_of[(kind, self.get(kind, name).name)]

    def registered_by(self, plugin: str) -> dict[str, list[str]]:
        """Kind -> names that ``plugin`` registered."""
        self._factories()
        out: dict[str, list[str]] = {}
        for (kind, name), owner in sorted(self._plugin_of.items()):
            if owner == plugin:
                out.setdefault(kind, []).append(name)
        return out

    def create(self, kind: str, spec: str | Mapping[str, Any] | Any, **overrides: Any) -> Any:
        """Build a component from a name, a mapping ``{"name": ..., **settings}`` or a validated spec."""
        if isinstance(spec, str):
            name, params = spec, {}
        elif isinstance(spec, Mapping):
            params = dict(spec)
            name = params.pop("name", None)
            if name is None:
                raise SpecError(None, [("name", f"a {kind} spec needs a 'name'; known: {', '.join(self.names(kind))}")])
        else:
            name, params = spec.name, spec.settings()
        params.update(overrides)
        component = self.get(kind, name)
        try:
            config = component.validate(params)
        except ValidationError as error:
            raise SpecError(None, [(".".join(map(str, e["loc"])), e["msg"]) for e in error.errors()]) from None
        return component.build(config)

    @classmethod
    def from_plugin_manager(cls, pm: pluggy.PluginManager) -> Registry:
        registry = cls()
        for hook_name, kind in (
            ("specclip_register_modalities", "modality"),
            ("specclip_register_readers", "reader"),
            ("specclip_register_writers", "writer"),
            ("specclip_register_datasets", "dataset"),
        ):
            for impl in getattr(pm.hook, hook_name).get_hookimpls():
                for item in impl.function() or []:
                    registry.add(_as_component(item, kind), impl.plugin_name)
                    if kind == "modality":
                        for alias in getattr(item, "aliases", ()):
                            registry.add_alias(alias, item.name)
        registry._factory_hooks = pm.hook.specclip_register_components.get_hookimpls()
        for impl in pm.hook.specclip_register_models.get_hookimpls():
            for directory in impl.function() or []:
                try:
                    model = RegisteredModel(directory)
                except SpecCLIPError as error:  # one plugin's damaged model must not stop every command
                    warnings.warn(f"plugin {impl.plugin_name!r}: model skipped, {error}", UserWarning, stacklevel=2)
                    continue
                registry.add(_as_component(model, "model"), impl.plugin_name)
        return registry


def _as_component(item: Any, kind: str | None) -> Component:
    if isinstance(item, Component):
        return item
    if kind is None:
        raise TypeError(f"specclip_register_components must return Component objects, got {item!r}")
    interface = _interface(kind)
    if interface is not None and not isinstance(item, interface):
        raise SpecCLIPError(f"a {kind} hook returned {item!r}, which is not a {interface.__name__}")
    description = getattr(item, "description", "") or (type(item).__doc__ or "").strip().split("\n")[0]
    return Component(kind, item.name, lambda item=item: item, None, description)


_registry: Registry | None = None


def get_registry() -> Registry:
    """The registry of the current plugin manager (built once, on first use)."""
    global _registry
    if _registry is None:
        from specclip_core.plugins import get_plugin_manager

        _registry = Registry.from_plugin_manager(get_plugin_manager())
    return _registry


def refresh_registry() -> None:
    """Rebuild the registry from the current plugin manager on next use (after a program registers or
    unregisters a plugin with ``get_plugin_manager().register(...)``)."""
    global _registry
    _registry = None


def reset_registry() -> None:
    """Forget the registry and plugin manager (the next use discovers plugins again)."""
    global _registry
    from specclip_core import plugins

    _registry = None
    plugins.reset_plugin_manager()


def create_component(kind: str, spec: str | Mapping[str, Any] | Any, **overrides: Any) -> Any:
    """Build a registered component; see :meth:`Registry.create`."""
    return get_registry().create(kind, spec, **overrides)


def list_components(kind: str | None = None) -> dict[str, list[str]] | list[str]:
    """Names of one kind, or of every kind when ``kind`` is None."""
    registry = get_registry()
    if kind is not None:
        return registry.names(kind)
    return {k: registry.names(k) for k in registry.kinds()}


def get_modality(name: str):
    """The registered :class:`~specclip_core.interfaces.Modality` called ``name`` (or an alias of it)."""
    return get_registry().get("modality", name).build()


def get_reader(name: str):
    return get_registry().get("reader", name).build()


def readers_for(modality: str | None = None) -> Iterable[Any]:
    registry = get_registry()
    for name in registry.names("reader"):
        reader = registry.get("reader", name).build()
        if modality is None or reader.modality == get_modality(modality).reader_modality:
            yield reader


@dataclass
class PluginInfo:
    """A registered plugin: its distribution, version and what it registers (kind -> names)."""

    name: str
    distribution: str
    version: str
    registers: dict[str, list[str]] = field(default_factory=dict)


def plugin_infos() -> list[PluginInfo]:
    """Every registered plugin, with its distribution, version and what it registers."""
    from specclip_core.plugins import distribution_of, get_plugin_manager

    registry = get_registry()
    infos = []
    for name, _plugin in get_plugin_manager().list_name_plugin():
        dist, version = distribution_of(name)
        infos.append(PluginInfo(name, dist, version, registry.registered_by(name)))
    return infos


def plugin_versions() -> str:
    """``specclip==0.1.0, specclip-myplugin==0.2.0, ...``: every installed plugin's distribution and version."""
    return ", ".join(sorted({f"{i.distribution}=={i.version}" for i in plugin_infos() if i.version}))


def distributions_of(used: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Distribution -> version of the plugins that registered the ``(kind, name)`` components in ``used``
    (names that are not registered are left out; validation reports them)."""
    from specclip_core.plugins import distribution_of

    registry = get_registry()
    out: dict[str, str] = {}
    for kind, name in used:
        try:
            plugin = registry.plugin_of(kind, name)
        except UnknownComponentError:
            continue
        dist, version = distribution_of(plugin)
        out[dist] = version
    return dict(sorted(out.items()))

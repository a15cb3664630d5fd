import subprocess
import sys

import pytest

from specclip_core.api import hookimpl
from specclip_core.components import KINDS, Component, ComponentList, Registry, get_registry
from specclip_core.errors import DuplicateComponentError, SpecCLIPError, UnknownComponentError
from specclip_core.interfaces import Head, HeadLayout
from specclip_core.plugins import DISABLE_AUTOLOAD_ENV, create_plugin_manager


def test_toy_plugin_is_discovered_through_its_entry_point(toy_site):
    assert (toy_site / "specclip_toy-0.3.2.dist-info" / "entry_points.txt").exists()
    registry = Registry.from_plugin_manager(create_plugin_manager(load_entry_points=True))
    assert "toy" in registry.names("modality")
    assert registry.plugin_of("modality", "toy") == "toy"
    assert registry.plugin_of("reader", "toy_csv") == "toy"


def test_autoload_can_be_disabled(monkeypatch):
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "1")
    registry = Registry.from_plugin_manager(create_plugin_manager())
    assert "toy" not in registry.names("modality")
    assert "masked_transformer" in registry.names("encoder"), "built-ins load regardless"


def test_plugins_command_lists_versions_and_registrations():
    out = subprocess.run([sys.executable, "-m", "specclip_core.cli", "plugins"], capture_output=True, text=True, check=True).stdout
    assert "toy  (specclip-toy 0.3.2)" in out
    assert "modality: toy" in out and "reader: toy_csv" in out
    assert "encoder: masked_transformer, mlp_autoencoder" in out


def test_unknown_name_lists_known_names():
    with pytest.raises(UnknownComponentError) as caught:
        get_registry().get("encoder", "resnet9000")
    message = str(caught.value)
    assert "resnet9000" in message and "masked_transformer" in message and "mlp_autoencoder" in message


def test_aliases_resolve_to_the_modality():
    assert get_registry().get("modality", "toy_alias").build().name == "toy"


class ConstantHead(Head):
    """Always predicts zero."""

    def fit(self, train, validation, run_dir, **settings):
        return {}

    def predict(self, inputs):
        return {}

    def save(self, directory):
        HeadLayout("constant", []).write(directory)

    @classmethod
    def load(cls, directory):
        return cls()


def test_duplicate_registration_names_both_plugins():
    registry = Registry()
    registry.add(Component("head", "x", ConstantHead), "first")
    with pytest.raises(DuplicateComponentError, match="first.*second"):
        registry.add(Component("head", "x", ConstantHead), "second")


def test_component_list_collects_decorated_factories():
    components = ComponentList()
    components.register("head", "constant")(ConstantHead)
    (item,) = list(components)
    assert (item.kind, item.name, item.description) == ("head", "constant", "Always predicts zero.")


def test_the_registry_rejects_an_unknown_kind_and_a_factory_of_another_meaning():
    with pytest.raises(SpecCLIPError, match="unknown component kind 'heads'.*kinds are modality"):
        ComponentList().register("heads", "constant")(ConstantHead)
    with pytest.raises(SpecCLIPError, match="unknown component kind"):
        Registry().add(Component("augmentation", "flip", ConstantHead), "mine")
    with pytest.raises(SpecCLIPError, match="head 'constant': the registered factory must be a subclass of Head"):
        ComponentList().register("head", "constant")(lambda config: ConstantHead())
    with pytest.raises(SpecCLIPError, match="must be a subclass of Stage"):
        ComponentList().register("stage", "mine")(ConstantHead)


def test_every_kind_says_what_its_factory_is():
    assert set(KINDS) >= {"modality", "reader", "writer", "dataset", "encoder", "head", "objective", "stage", "embedder"}
    assert all(len(meaning) > 20 for meaning in KINDS.values())


def test_a_head_layout_names_its_head_and_labels(tmp_path):
    HeadLayout("constant", ["teff"], {"width": 3}).write(tmp_path)
    layout = HeadLayout.read(tmp_path)
    assert (layout.head, layout.labels, layout.settings) == ("constant", ["teff"], {"width": 3})
    (tmp_path / "head.json").write_text('{"labels": []}')
    with pytest.raises(SpecCLIPError, match="head.json: no 'head'"):
        HeadLayout.read(tmp_path)


class _FactoriesPlugin:
    """Registers a head through specclip_register_components, counting the calls (and, with ``reader``,
    a component of an instance kind there too)."""

    def __init__(self, reader: bool = False):
        self.calls, self.reader = 0, reader

    @hookimpl
    def specclip_register_components(self):
        self.calls += 1
        components = [Component("head", "constant_head", ConstantHead)]
        return components + ([Component("reader", "sneaky", lambda: None)] if self.reader else [])


def test_the_factories_hook_is_called_on_the_first_use_of_one_of_its_kinds():
    pm = create_plugin_manager(load_entry_points=False)
    plugin = _FactoriesPlugin()
    pm.register(plugin, name="factories")
    registry = Registry.from_plugin_manager(pm)
    registry.names("modality"), registry.names("reader"), registry.is_modality("nothing")
    assert plugin.calls == 0, "modalities and readers are read without the networks, heads and stages"
    assert registry.get("head", "constant_head").factory is ConstantHead
    registry.names("encoder"), registry.kinds()
    assert plugin.calls == 1, "asked once"


def test_a_component_of_an_instance_kind_from_the_factories_hook_names_the_hook_to_use():
    pm = create_plugin_manager(load_entry_points=False)
    pm.register(_FactoriesPlugin(reader=True), name="factories")
    registry = Registry.from_plugin_manager(pm)
    with pytest.raises(SpecCLIPError, match="plugin 'factories': specclip_register_components gave the reader 'sneaky'; register a reader with specclip_register_readers"):
        registry.names("head")


def test_a_failing_factories_hook_fails_every_use_and_registers_nothing():
    pm = create_plugin_manager(load_entry_points=False)
    pm.register(_FactoriesPlugin(reader=True), name="factories")
    registry = Registry.from_plugin_manager(pm)
    for _ in range(2):
        with pytest.raises(SpecCLIPError, match="specclip_register_components gave the reader"):
            registry.get("encoder", "masked_transformer")
    assert "masked_transformer" not in registry._items["encoder"], "nothing half-registered"

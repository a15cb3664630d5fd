"""Every run spec and dataset card shipped in registry/ validates against the installed plugins."""

from pathlib import Path

import pytest

from specclip_core.components import get_registry
from specclip_core.data.datasets import DatasetCard
from specclip_core.errors import SpecError
from specclip_core.spec import load_spec, registered_specs

REGISTRY = Path(__file__).resolve().parent.parent / "registry"
SPECS = sorted((REGISTRY / "specs").glob("*.yaml"))


def test_the_registry_ships_specs_and_they_are_registered():
    assert SPECS, "registry/specs is empty"
    assert {p.stem for p in SPECS} <= set(registered_specs())


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_spec_validates(path):
    try:
        spec = load_spec(path)
    except SpecError as error:
        missing = [m for _, m in error.problems if "unknown modality" in m or "unknown reader" in m]
        if missing and len(missing) == len(error.problems):
            pytest.skip(f"needs a plugin that is not installed: {missing[0]}")
        raise
    assert spec.name == path.stem


@pytest.mark.parametrize("path", sorted((REGISTRY / "datasets").glob("*.toml")), ids=lambda p: p.stem)
def test_dataset_card_validates(path):
    card = DatasetCard.from_toml(path)
    assert card.name == path.stem and card.licence
    assert card.name in get_registry().names("dataset")

"""Every run spec and dataset card of the catalogue validates against the installed plugins, and no
shipped spec points into a local folder: local data come in through declared settings."""

from pathlib import Path

import pytest
import yaml

from specclip_core.api import DatasetCard, SpecError, get_registry, load_spec
from specclip_core.testing import cli_main
from specclip_registry.plugin import catalogue_dir

SPECS = sorted(catalogue_dir("specs").glob("*.yaml"))
CARDS = sorted(catalogue_dir("datasets").glob("*.toml"))


def _settings(path: Path) -> dict[str, str]:
    """A value for every setting the spec (or the spec it extends) declares."""
    names: dict[str, str] = {}
    while path is not None:
        data = yaml.safe_load(path.read_text())
        names.update({name: f"/data/{name}" for name in data.get("settings", {})})
        base = data.get("extends")
        path = catalogue_dir("specs") / f"{base}.yaml" if base else None
    return {f"settings.{name}": value for name, value in names.items()}


def test_the_catalogue_ships_specs_and_cards():
    assert len(SPECS) >= 10 and CARDS


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_spec_validates(path):
    spec = load_spec(path.stem, _settings(path), check_paths=False)  # the settings' folders are placeholders
    assert spec.name == path.stem


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_no_spec_points_into_a_local_folder(path):
    assert "../" not in path.read_text() and "/shared" not in path.read_text()


def test_a_spec_without_its_setting_names_the_setting():
    with pytest.raises(SpecError) as caught:
        load_spec("lamost-small")
    fields = [field for field, _ in caught.value.problems]
    assert "settings.lamost_dr10" in fields and "settings.lamost_dr8_repeats" in fields
    assert "--set settings.lamost_dr10=" in str(caught.value)


@pytest.mark.parametrize("path", CARDS, ids=lambda p: p.stem)
def test_dataset_card_validates(path):
    card = DatasetCard.from_toml(path)
    assert card.name == path.stem and card.licence
    assert card.name in get_registry().names("dataset")


def test_specs_command_lists_every_spec_with_its_distribution(capsys):
    assert cli_main(["specs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    listed = {line.split()[0]: line.split()[1] for line in lines}
    assert {p.stem for p in SPECS} <= set(listed)
    assert {listed[p.stem] for p in SPECS} == {"specclip-registry"}

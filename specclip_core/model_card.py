"""Model cards: what a named model is, what it was trained on, how well it does and the sha256 of
each of its files (``model.json`` in a model directory, see :mod:`specclip_core.models`), and the
check of every file against them before anything is loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from specclip_core.errors import SpecCLIPError
from specclip_core.util import sha256_file

CARD = "model.json"


class LabelScore(BaseModel):
    """A label's figures on the test split of the run the model came from."""

    model_config = ConfigDict(extra="forbid")

    unit: str = ""
    robust_sigma: float | None = Field(None, description="biweight scale of prediction - truth")
    r2: float | None = None
    bias: float | None = Field(None, description="median of prediction - truth")
    coverage_68: float | None = Field(None, description="fraction of test stars inside the 68% interval (heads with uncertainties)")
    coverage_95: float | None = None
    sbc_ks_p: float | None = Field(None, description="simulation-based calibration: K-S p-value of the ranks")
    n: int | None = Field(None, description="test stars scored")


class ModelCard(BaseModel):
    """What a named model is, what it was trained on, how well it does, and the sha256 of its files."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="the name ``specclip predict --model`` takes")
    modality: str = Field(description="the modality whose spectra it reads")
    labels: list[str] = Field(description="the labels it predicts")
    description: str = ""
    training_data: str = Field(description="what it was trained on, real or SIMULATED spectra, and how many")
    simulated: bool = Field(description="whether any head was trained on simulated spectra (for an adapted head: its base too)")
    adapted_on: Literal["real", "SIMULATED"] | None = Field(
        None, description="for heads adapted from a base (finetune stages): the spectra they were adapted on, SIMULATED if any head's were"
    )
    spec: str = Field(description="the registered spec (or file) whose run it was exported from")
    seed: int
    heads: list[str] = Field(description="the heads stages it applies")
    scores: dict[str, LabelScore] = Field(default_factory=dict, description="label -> figures on the test split")
    files: dict[str, str] = Field(description="path inside the model directory -> sha256")
    versions: str = Field("", description="the distributions and versions it was exported with")
    exported: str = ""

    def line(self) -> str:
        """One line for ``specclip models list``."""
        return f"{self.name:<28} {self.modality:<12} {', '.join(self.labels):<32} {self.trained_on()}; {self.description}"

    def trained_on(self) -> str:
        """``trained on real spectra``, ``trained on SIMULATED spectra``, or for an adapted model
        ``adapted on real spectra from a base trained on SIMULATED ones``."""
        kind = "SIMULATED" if self.simulated else "real"
        if self.adapted_on is None:
            return f"trained on {kind} spectra"
        if self.adapted_on == "SIMULATED":
            return "adapted on SIMULATED spectra"
        return f"adapted on real spectra from a base trained on {kind} ones"


class RegisteredModel:
    """A model directory a plugin ships, with its card read."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.card = read_card(self.directory)
        self.name = self.card.name
        self.description = self.card.description


def read_card(directory: str | Path) -> ModelCard:
    """The card of a model directory (an error naming ``model.json`` when it is missing or invalid)."""
    path = Path(directory) / CARD
    if not path.is_file():
        raise SpecCLIPError(f"{path}: missing; {directory} is not a model directory (export one with `specclip models export RUN -o DIR`)")
    try:
        return ModelCard.model_validate_json(path.read_text())
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise SpecCLIPError(f"{path}: not a valid model card ({problems})") from None


def is_model_dir(directory: str | Path) -> bool:
    return (Path(directory) / CARD).is_file()


def verify_model(directory: str | Path) -> ModelCard:
    """The card of ``directory`` once every file it lists is present with its sha256; an error naming
    the first file that is missing, modified or truncated."""
    directory = Path(directory)
    card = read_card(directory)
    for relative, expected in card.files.items():
        path = directory / relative
        if not path.is_file():
            raise SpecCLIPError(f"{path}: missing; model {card.name!r} lists it (reinstall the package that ships the model, or export it again)")
        found = sha256_file(path)
        if found != expected:
            raise SpecCLIPError(
                f"{path}: sha256 {found} does not match model {card.name!r}'s card ({expected}): the file is modified or truncated; "
                "nothing was loaded (reinstall the package that ships the model, or export it again)"
            )
    return card


def card_digest(directory: str | Path) -> str:
    """The sha256 of a model's card: it pins every file, so it names the model's exact bytes."""
    return sha256_file(Path(directory) / CARD)

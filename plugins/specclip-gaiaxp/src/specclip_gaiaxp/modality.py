"""The ``gaia_xp`` modality: 343 samples, 336-1020 nm, normalised at 550 nm (paper sec. 2.2)."""

from __future__ import annotations

from typing import Any

from specclip_core.api import Instrument, Modality, Spectra
from specclip_gaiaxp import preprocess as _preprocess
from specclip_gaiaxp.grid import WAVELENGTH

OAE_TOKENIZER: dict[str, Any] = {"name": "vector"}
MT_TOKENIZER: dict[str, Any] = {"name": "windows", "size": 1, "stride": 1}

INSTRUMENT = Instrument(
    resolving_power=50.0,
    native_wavelength=WAVELENGTH,
    description=(
        "Gaia BP/RP spectrophotometers: R ~ 30-100 in BP (330-680 nm) and ~70-100 in RP (640-1050 nm), "
        "50 used as nominal; DR3 mean spectra sampled at 336-1020 nm every 2 nm"
    ),
)


class GaiaXPModality(Modality):
    """Gaia DR3 XP spectra on 336-1020 nm every 2 nm, divided by the flux at 550 nm.

    Tokenizations: the whole vector for the MLP autoencoder (OAE, the default; paper sec. 5.6) or
    one token per sample for the masked transformer (``MT_TOKENIZER``: 2 stats + 343 tokens).
    """

    name = _preprocess.MODALITY
    aliases = ("xp",)
    wavelength = WAVELENGTH
    stats_names = ("mean", "std")
    default_tokenizer = OAE_TOKENIZER
    default_encoder = {"name": "mlp_autoencoder", "size": "small"}
    encoder_tokenizers = {"mlp_autoencoder": OAE_TOKENIZER, "masked_transformer": MT_TOKENIZER}
    instrument = INSTRUMENT
    description = "Gaia DR3 BP/RP (XP) spectra, 343 samples 336-1020 nm, flux / flux at 550 nm"

    def preprocess(self, spectra: Spectra) -> Spectra:
        return _preprocess.preprocess(spectra)


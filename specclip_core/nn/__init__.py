"""Networks: tokenizers, the masked transformer, the MLP autoencoder and the modality encoder."""

from specclip_core.nn.autoencoder import MLPAutoencoder
from specclip_core.nn.modality_encoder import ModalityEncoder
from specclip_core.nn.tokenizers import VectorTokenizer, WindowTokenizer
from specclip_core.nn.transformer import MaskedTransformer

__all__ = ["MLPAutoencoder", "MaskedTransformer", "ModalityEncoder", "VectorTokenizer", "WindowTokenizer"]

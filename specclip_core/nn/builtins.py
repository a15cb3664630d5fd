"""The core's built-in tokenizers and encoders, registered through the same hook as any plugin's.

The networks are imported when the registry asks for them, so loading the plugins stays cheap.
"""

from __future__ import annotations

from specclip_core.hookspecs import hookimpl


@hookimpl
def specclip_register_components():
    from specclip_core.components import ComponentList
    from specclip_core.nn.autoencoder import MLPAutoencoder, MLPAutoencoderConfig
    from specclip_core.nn.decoders import MLPDecoder, MLPDecoderConfig
    from specclip_core.nn.modality_encoder import ModalityEncoder
    from specclip_core.nn.projections import CrossAttentionConfig, CrossAttentionProjection, MLPProjection, MLPProjectionConfig
    from specclip_core.nn.tokenizers import TokenizerConfig, VectorTokenizer, WindowsConfig, WindowTokenizer
    from specclip_core.nn.transformer import MaskedTransformer, MaskedTransformerConfig

    components = ComponentList()
    components.register("tokenizer", "windows", WindowsConfig, "overlapping windows of pixels (size 1 = one token per pixel), stats tokens first")(WindowTokenizer)
    components.register("tokenizer", "vector", TokenizerConfig, "the whole spectrum as one token, stats first")(VectorTokenizer)
    components.register("encoder", "masked_transformer", MaskedTransformerConfig, "masked spectrum transformer (paper sec. 2.1, app. D.1)")(MaskedTransformer)
    components.register("encoder", "mlp_autoencoder", MLPAutoencoderConfig, "MLP autoencoder, OAE (paper app. D.2)")(MLPAutoencoder)

    components.register("projection", "cross_attention", CrossAttentionConfig, "learned-query cross-attention over tokens + MLP; optional shared/private split (app. E.1)")(CrossAttentionProjection)
    components.register("projection", "mlp", MLPProjectionConfig, "MLP + residual block on a vector embedding; optional shared/private split (app. E.1)")(MLPProjection)
    components.register("embedder", "modality_encoder", None, "a pretrained tokenizer + encoder; pooled embedding")(ModalityEncoder)
    components.register("decoder", "mlp_decoder", MLPDecoderConfig, "MLP [in, m1*in, ..., out] from an embedding to a spectrum (app. E.2)")(MLPDecoder)
    return list(components)

"""Networks: tokenizers, the masked transformer, the MLP autoencoder, projections, decoders and the modality encoder."""

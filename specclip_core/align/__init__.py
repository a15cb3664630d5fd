"""Contrastive alignment of any number of modalities: model, objectives, metrics, aligned embedder."""

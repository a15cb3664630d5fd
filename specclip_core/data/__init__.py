"""Spectral stores, datasets and loaders, deterministic splits, ingest, joins and dataset cards."""

"""Similarity search: faiss cosine search, retrieval accuracy, repeat-observation neighbours."""

"""Similarity search: faiss cosine search, retrieval accuracy, grouping repeat observations."""

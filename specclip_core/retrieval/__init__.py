"""Similarity search: faiss cosine search, retrieval accuracy, grouping repeat observations, and
embedding catalogues with their faiss indexes and search (``specclip embed``, ``index build``, ``search``)."""

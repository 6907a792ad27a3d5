"""Encoding texts into embeddings, through a content-addressed on-disk cache."""

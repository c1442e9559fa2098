"""Chunks: the content-addressed store for creators' assets."""

from django.apps import AppConfig


class ChunksConfig(AppConfig):
    """Content-addressed chunk store, manifests and their API."""

    name = "chunks"

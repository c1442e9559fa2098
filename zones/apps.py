from django.apps import AppConfig


class ZonesConfig(AppConfig):
    """Zone workers, their runtime and management commands."""

    name = "zones"

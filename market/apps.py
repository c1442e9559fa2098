from django.apps import AppConfig


class MarketConfig(AppConfig):
    """Markets and their booths."""

    name = "market"

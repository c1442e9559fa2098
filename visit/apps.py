from django.apps import AppConfig


class VisitConfig(AppConfig):
    """The browser visitor page: walk the live market as a visitor, see its booths' assets."""

    name = "visit"

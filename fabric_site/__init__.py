"""Project package: settings, ASGI entry point, URLs and the Celery app."""

# Imported here so that shared tasks bind to this app whenever Django starts.
from .celery import app as celery_app

__all__ = ("celery_app",)

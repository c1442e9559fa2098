from django.apps import AppConfig


class OperatorUiConfig(AppConfig):
    """The operator dashboard page and its websocket feed."""

    name = "operator_ui"
    verbose_name = "Operator UI"

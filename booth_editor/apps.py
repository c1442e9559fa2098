from django.apps import AppConfig


class BoothEditorConfig(AppConfig):
    """The creators' booth editor: arrange a booth's assets on its floor and publish."""

    name = "booth_editor"

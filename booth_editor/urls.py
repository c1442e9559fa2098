from django.urls import path

from booth_editor.views import booth_arrange

app_name = "booth_editor"

urlpatterns = [
    path("booths/<int:booth_id>/arrange/", booth_arrange, name="arrange"),
]

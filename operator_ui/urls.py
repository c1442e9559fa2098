from django.urls import path

from operator_ui.views import dashboard

urlpatterns = [
    path("dashboard/", dashboard, name="dashboard"),
]

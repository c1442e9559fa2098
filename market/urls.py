from django.urls import path

from market.views import landing

urlpatterns = [
    path("", landing, name="landing"),
]

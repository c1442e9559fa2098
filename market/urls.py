from django.urls import path

from market.api import market_join
from market.host_api import host_release
from market.views import landing

urlpatterns = [
    path("", landing, name="landing"),
    path("api/markets/<int:market_id>/join/", market_join, name="market-join"),
    path("api/markets/<int:market_id>/host/release/", host_release, name="market-host-release"),
]

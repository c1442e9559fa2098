from django.urls import path

from operator_ui.market_list import market_list, market_start
from operator_ui.markets import market_map, market_new
from operator_ui.views import dashboard

urlpatterns = [
    path("dashboard/", dashboard, name="dashboard"),
    path("dashboard/markets/", market_list, name="market-list"),
    path("dashboard/markets/<int:market_id>/start/", market_start, name="market-start"),
    path("dashboard/markets/new/", market_new, name="market-new"),
    path("dashboard/markets/<int:market_id>/map/", market_map, name="market-map"),
]

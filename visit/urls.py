from django.urls import path

from visit.views import visit_page

app_name = "visit"

urlpatterns = [
    path("visit/<int:market_id>/", visit_page, name="visit"),
]

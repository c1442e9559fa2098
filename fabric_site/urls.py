"""Site URLs: app pages, the chunk store, the API schema, sign-in, the admin, health and readiness."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from fabric_site.views import healthz, readyz

urlpatterns = [
    path("", include("market.urls")),
    path("", include("chunks.urls")),
    path("", include("operator_ui.urls")),
    path("", include("booth_editor.urls")),
    path("", include("visit.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
]

"""Site URLs: each app's pages, the admin and the health check."""

from django.contrib import admin
from django.urls import include, path

from fabric_site.views import healthz

urlpatterns = [
    path("", include("market.urls")),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
]

"""ASGI entry point: HTTP goes to Django, websockets to each app's routing."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fabric_site.settings")
# Django must be set up before anything imports models (consumers, routing).
django_http = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from market.routing import websocket_urlpatterns as market_websockets  # noqa: E402

application = ProtocolTypeRouter(
    {
        # The embedded default has no front server, so the app serves its own static files.
        "http": ASGIStaticFilesHandler(django_http),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(market_websockets))),
    }
)

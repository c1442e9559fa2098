"""ASGI entry point: HTTP goes to Django, websockets to each app's routing.

HTTP is served by Django's ASGI handler, extended so that chunk uploads read
their body as it arrives instead of after Django has spooled all of it
(chunks/asgi.py says why). Downloads of readable chunks by anonymous visitors and
visitors with an asset token are answered in front of Django (chunks/fastpath.py), and
so are the JSON endpoints programs call on every join and transfer
(fabric_site/program_api.py).
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fabric_site.settings")
# Django must be set up before anything imports models (consumers, routing); this is
# what django.core.asgi.get_asgi_application does before it builds its handler.
django.setup(set_prefix=False)

from chunks.asgi import StreamingUploadASGIHandler  # noqa: E402
from chunks.fastpath import ChunkFastPath  # noqa: E402

django_http = StreamingUploadASGIHandler()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import re_path  # noqa: E402

from fabric_site.collector import collector_settle  # noqa: E402
from fabric_site.program_api import ProgramApi  # noqa: E402
from fabric_site.static_files import StaticFiles  # noqa: E402
from market.api import market_join  # noqa: E402
from market.host_api import host_release  # noqa: E402
from market.live import live_market_set  # noqa: E402
from market.routing import websocket_urlpatterns as market_websockets  # noqa: E402
from operator_ui.routing import websocket_urlpatterns as operator_websockets  # noqa: E402
from zones.routing import websocket_urlpatterns as visitor_websockets  # noqa: E402
from zones.serve import live_market_from_environment  # noqa: E402
from zones.web_limits import ConnectionsPerAddress  # noqa: E402

# A web process started on its own (daphne, uvicorn) learns its market from the
# environment; runmarket announces the market itself.
if (announced := live_market_from_environment()) is not None:
    live_market_set(announced)

# One address may hold only so many requests and sockets at once (zones/web_limits.py);
# counted per connection, never per frame.
application = ConnectionsPerAddress(
    ProtocolTypeRouter(
        {
            # The embedded default has no front server, so the app serves its own static files.
            "http": ProgramApi(
                ChunkFastPath(StaticFiles(django_http)),
                # the paths of market/urls.py's routes to the same views
                [
                    (r"/api/markets/(?P<market_id>[0-9]+)/join/", market_join),
                    (r"/api/markets/(?P<market_id>[0-9]+)/host/release/", host_release),
                ],
            ),
            # Visitor sockets are programs holding a signed one-time ticket, not browsers with
            # a session cookie: no Origin header to check and no session to look up. The
            # browser pages' sockets keep both.
            "websocket": URLRouter(
                [
                    *visitor_websockets,
                    re_path(
                        r"^",
                        AllowedHostsOriginValidator(
                            AuthMiddlewareStack(URLRouter(market_websockets + operator_websockets))
                        ),
                    ),
                ]
            ),
        }
    )
)

# Everything loaded so far (Django, the apps, numpy, the routes) lives as long as the
# process: moved out of the collector's reach, a full collection no longer walks it, and
# full collections come a tenth as often (fabric_site/collector.py).
collector_settle()

"""The site's own static files, served in front of Django (the embedded default has no
front server to do it).

Django's handler refuses a path that climbs out of the static folders
(`/static/../settings.py`) by raising SuspiciousFileOperation, which it does not
turn into a response: the server answered 500. Here such a path is what it is
for a visitor, a file that is not there: 404.
"""

from typing import Any

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.exceptions import SuspiciousFileOperation
from django.http import Http404


class StaticFiles(ASGIStaticFilesHandler):
    """Static files under STATIC_URL; a path outside the static folders is a 404."""

    def serve(self, request: Any) -> Any:
        try:
            return super().serve(request)
        except SuspiciousFileOperation:
            raise Http404("no such static file") from None

"""Site-wide views that belong to no app."""

from django.http import HttpRequest, JsonResponse


def healthz(request: HttpRequest) -> JsonResponse:
    """Answer while the process can serve requests (for probes and start-up waits)."""
    return JsonResponse({"ok": True})

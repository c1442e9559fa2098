"""Site-wide views that belong to no app."""

from django.http import HttpRequest, JsonResponse

from fabric_site.readiness import RETRY_AFTER_S, quiet, readiness


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: answer while the process can serve requests (for probes and start-up waits)."""
    return JsonResponse({"ok": True})


def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 while every service the market needs answers, else 503 naming the ones
    that do not (fabric_site/readiness.py)."""
    state = readiness()
    response = JsonResponse(state.as_json(), status=200 if state.ready else 503)
    if not state.ready:
        response["Retry-After"] = str(RETRY_AFTER_S)
        quiet(response)
    return response

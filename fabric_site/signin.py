"""Sign-in limits: what a person or a program is told once django-axes has locked it out.

django-axes counts failed sign-ins (the sign-in page, the admin's, HTTP Basic) per
username and per address, and refuses further attempts for a cool-off once either
count reaches AXES_FAILURE_LIMIT. These answers say so plainly, with the wait in
Retry-After, so that a script knows when to come back and a person knows the
password was not even checked.
"""

from typing import Any

from axes.helpers import get_cool_off
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render


def cool_off_seconds(request: Any = None) -> int:
    """How long a locked-out user or address waits before it may try again."""
    cool_off = get_cool_off(request)
    return 0 if cool_off is None else int(cool_off.total_seconds())


def locked_out_detail(request: Any = None) -> str:
    """The sentence every lockout answer carries."""
    minutes = max(1, round(cool_off_seconds(request) / 60))
    return (
        "Too many failed sign-ins for this username or from this address: sign-in is "
        f"refused for {minutes} minutes after the last failed attempt."
    )


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: Any = None
) -> HttpResponse:
    """429 with the wait in words and in Retry-After.

    A program that sent HTTP Basic credentials gets the JSON error body the APIs use,
    `{"error": "too_many_requests", "detail": ...}`; a person gets a page.
    """
    detail = locked_out_detail(request)
    response: HttpResponse
    if request.headers.get("Authorization", "").lower().startswith("basic "):
        response = JsonResponse({"error": "too_many_requests", "detail": detail}, status=429)
    else:
        response = render(request, "registration/locked_out.html", {"detail": detail}, status=429)
    response["Retry-After"] = str(cool_off_seconds(request))
    return response

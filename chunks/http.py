"""HTTP around the chunk store: who is asking, and how a ChunkError is answered.

Both the raw chunk views and the DRF views authenticate with DRF's configured
authenticators and report a refused request with `chunk_error_response`, so a
client sees the same statuses and JSON bodies from every chunk endpoint.
"""

from collections.abc import AsyncIterator

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http import HttpRequest, JsonResponse
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.settings import api_settings

from chunks.asgi import request_body_stream
from chunks.errors import ChunkError, ChunkErrorKind

STATUS_FOR_KIND = {
    ChunkErrorKind.INVALID: 400,
    ChunkErrorKind.NOT_AUTHENTICATED: 401,
    ChunkErrorKind.AUTHENTICATION_FAILED: 401,
    ChunkErrorKind.FORBIDDEN: 403,
    ChunkErrorKind.CONFLICT: 409,
    ChunkErrorKind.LENGTH_REQUIRED: 411,
    ChunkErrorKind.TOO_LARGE: 413,
    ChunkErrorKind.RANGE_NOT_SATISFIABLE: 416,
    ChunkErrorKind.TOO_MANY_REQUESTS: 429,
}
AUTHENTICATION_KINDS = (ChunkErrorKind.NOT_AUTHENTICATED, ChunkErrorKind.AUTHENTICATION_FAILED)
READ_BLOCK_BYTES = 1 << 20


def _authenticators() -> list[object]:
    return [authenticator() for authenticator in api_settings.DEFAULT_AUTHENTICATION_CLASSES]


def authenticate_header(request: HttpRequest) -> str | None:
    """The WWW-Authenticate challenge DRF would send, from its first authenticator."""
    authenticators = _authenticators()
    if not authenticators:
        return None
    return authenticators[0].authenticate_header(Request(request))  # type: ignore[attr-defined]


def chunk_error_response(error: ChunkError, request: HttpRequest) -> JsonResponse:
    """The one answer to a ChunkError: its status, its headers and its JSON body.

    As in DRF, a request that lacks or fails authentication gets 401 with a
    challenge when an authenticator offers one, and 403 otherwise.
    """
    status = STATUS_FOR_KIND[error.kind]
    response = JsonResponse(error.body(), status=status)
    for name, value in error.headers.items():
        response[name] = value
    if error.kind in AUTHENTICATION_KINDS:
        challenge = authenticate_header(request)
        if challenge:
            response["WWW-Authenticate"] = challenge
        else:
            response.status_code = 403
    return response


def request_user(request: HttpRequest) -> AbstractBaseUser | AnonymousUser:
    """The user DRF's authenticators find on a plain Django request (synchronous).

    Session authentication enforces CSRF for unsafe methods, as in any DRF view.
    """
    drf_request = Request(request, authenticators=_authenticators())
    try:
        return drf_request.user
    except exceptions.AuthenticationFailed as error:
        raise ChunkError(ChunkErrorKind.AUTHENTICATION_FAILED, str(error.detail)) from error
    except exceptions.PermissionDenied as error:
        raise ChunkError(ChunkErrorKind.FORBIDDEN, str(error.detail)) from error
    except exceptions.Throttled as error:
        raise chunk_error_throttled(error) from error


def chunk_error_throttled(error: exceptions.Throttled) -> ChunkError:
    """A DRF refusal to try again yet (a sign-in lockout) as the chunk store reports it."""
    headers = {} if error.wait is None else {"Retry-After": str(int(error.wait))}
    return ChunkError(ChunkErrorKind.TOO_MANY_REQUESTS, str(error.detail), headers=headers)


async def request_body_pieces(request: HttpRequest) -> AsyncIterator[bytes]:
    """The request body as it arrives: streamed under our ASGI handler, else read in blocks."""
    stream = request_body_stream(request)
    if stream is not None:
        async for piece in stream.blocks():
            yield piece
        return
    while piece := request.read(READ_BLOCK_BYTES):
        yield piece

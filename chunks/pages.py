"""The creators' upload page: drop files into a booth's namespace, choose who may read it."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from chunks.selectors import booths_writable


@login_required
@ensure_csrf_cookie  # the page's script sends the cookie's token with every write
def upload_page(request: HttpRequest) -> HttpResponse:
    """The booths and namespaces the signed-in user may write, with the uploader."""
    return render(request, "chunks/upload.html", {"booths": booths_writable(user=request.user)})

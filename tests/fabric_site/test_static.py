"""The site serves its own static files with debug mode off, as it runs by default."""

from django.conf import settings

from tests.chunks.asgi_calls import asgi_call


async def test_static_files_are_served_with_debug_off():
    assert settings.DEBUG is False

    answer = await asgi_call("GET", "/static/market/site.css")

    assert answer.status == 200
    assert answer.headers["content-type"].startswith("text/css")
    assert answer.body == (settings.BASE_DIR / "static" / "market" / "site.css").read_bytes()

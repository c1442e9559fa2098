"""A static path that climbs out of the static folders is a missing file, not a server error."""

import pytest

from tests.chunks.asgi_calls import asgi_call


@pytest.mark.parametrize(
    "path",
    [
        "/static/../x",
        "/static/../manage.py",
        "/static/market/../../fabric_site/settings.py",
        "/static/../../../../etc/passwd",
    ],
)
async def test_a_path_outside_the_static_folders_is_not_found(path):
    answer = await asgi_call("GET", path)

    assert answer.status == 404
    assert b"SECRET_KEY" not in answer.body


async def test_a_dot_dot_that_stays_inside_is_still_served():
    answer = await asgi_call("GET", "/static/chunks/../market/site.css")

    assert answer.status == 200
    assert answer.headers["content-type"].startswith("text/css")

"""The upload page tells people, in the page, why an upload stopped; Retry carries on.

The market here takes chunks of at most 256 KiB, so the page's 1 MiB chunks meet a real 413.
"""

import re

import pytest

from tests.browser import browser, page, screenshot  # noqa: F401  (fixtures)
from tests.live import live_market

from .upload_browser import MIB, choose_file, finished, peopled, random_bytes, sign_in

MAX_CHUNK = 256 * 1024
# Chromium reports every refused request on the console; those are the refusals under test.
REFUSED_LOAD = re.compile(r"^Failed to load resource: ")


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("upload-errors")
    with live_market(data_dir, CHUNK_MAX_BYTES=str(MAX_CHUNK)) as server:
        yield peopled(server)


def stopped(tab, name: str) -> str:
    """The error shown for file `name` once its upload has stopped."""
    row = tab.locator(f'.upload[data-name="{name}"]').last
    tab.wait_for_function(
        "row => ['done', 'failed'].includes(row.dataset.state)",
        arg=row.element_handle(),
        timeout=30_000,
    )
    assert row.get_attribute("data-state") == "failed", row.inner_text()
    return row.locator(".error").inner_text()


def unexpected_errors(tab) -> list[str]:
    return [error for error in tab.errors if not REFUSED_LOAD.match(error)]


def test_a_chunk_larger_than_the_market_takes_is_explained(page, market):  # noqa: F811
    namespace = market.namespace(market.booths[0], "big")
    sign_in(page, market, "anne")

    choose_file(page, namespace, "large.bin", random_bytes(MIB + 5, seed=4))

    message = stopped(page, "large.bin")
    assert "Sending chunk 1 of 2 was refused" in message
    assert "the market accepts chunks of at most 256 KiB" in message
    screenshot(page, "upload-too-large")
    assert unexpected_errors(page) == []


def test_a_network_failure_is_explained_and_retry_finishes_the_upload(page, market):  # noqa: F811
    namespace = market.namespace(market.booths[1], "flaky")
    sign_in(page, market, "anne")
    page.route("**/chunks/missing", lambda route: route.abort("connectionrefused"))

    choose_file(page, namespace, "small.bin", random_bytes(100_000, seed=5))

    message = stopped(page, "small.bin")
    assert "the market could not be reached (network error)" in message
    screenshot(page, "upload-network-error")
    page.unroute("**/chunks/missing")
    page.get_by_role("button", name="Retry").click()
    assert "1 chunk, 97.7 KiB (100,000 bytes)" in finished(page, "small.bin").inner_text()
    assert unexpected_errors(page) == []


def test_losing_write_access_or_the_session_is_explained(page, market):  # noqa: F811
    namespace = market.namespace(market.booths[2], "revoked")
    sign_in(page, market, "anne")
    revoke = (
        "from market.rebac.services import rebac_tuple_delete; "
        "from django.contrib.auth.models import User; "
        f"rebac_tuple_delete(object='namespace:{namespace}', relation='writer', "
        "user=f'user:{User.objects.get(username=\"anne\").pk}')"
    )
    assert market.server.manage("shell", "-c", revoke).returncode == 0

    choose_file(page, namespace, "denied.bin", random_bytes(1000, seed=6))
    message = stopped(page, "denied.bin")
    assert "Asking which chunks the market already has was refused" in message
    assert "You may not write to namespace 'revoked'" in message

    page.context.clear_cookies()
    page.get_by_role("button", name="Retry").click()
    page.wait_for_function(
        "document.querySelector('.upload .error').textContent.includes('no longer signed in')"
    )
    screenshot(page, "upload-refused")
    assert unexpected_errors(page) == []

"""The upload page in a real browser, against a live market: upload, resume, share."""

import re
from collections import Counter

import blake3
import pytest

from chunks.client import PermissionDenied
from tests.browser import browser, page, screenshot  # noqa: F401  (fixtures)
from tests.live import live_market

from .upload_browser import (
    MIB,
    PASSWORD,
    PUT_CHUNK,
    choose_file,
    fetch,
    finished,
    grant_user,
    peopled,
    random_bytes,
    readers_card,
    revoke_user,
    sign_in,
)


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    with live_market(tmp_path_factory.mktemp("upload-page")) as server:
        yield peopled(server)


def chunk_hashes(data: bytes) -> list[str]:
    return [blake3.blake3(data[i : i + MIB]).hexdigest() for i in range(0, len(data), MIB)]


def count_puts(tab) -> Counter:
    """PUTs of chunks the page sends from now on, by hash."""
    puts: Counter = Counter()

    def seen(request):
        if request.method == "PUT" and (match := PUT_CHUNK.search(request.url)):
            puts[match.group(1)] += 1

    tab.on("request", seen)
    return puts


def test_an_upload_is_rebuilt_byte_for_byte_and_readers_follow_the_page_s_grants(
    page,  # noqa: F811
    market,
    tmp_path,
):
    booth = market.booths[0]
    namespace = market.namespace(booth, "looms")
    data = random_bytes(3 * MIB + MIB // 2, seed=1)
    sign_in(page, market, "anne", shot="upload-sign-in")
    screenshot(page, "upload-signed-in")

    choose_file(page, namespace, "tapestry.bin", data)
    row = finished(page, "tapestry.bin")
    assert "4 chunks, 3.5 MiB (3,670,016 bytes)" in row.inner_text()
    grant_user(page, namespace, "rita")
    screenshot(page, "upload-done")

    first = fetch(market, "rita", booth, tmp_path / "rita")
    assert (first.chunks_downloaded, first.chunks_cached) == (4, 0)
    assert first.assets[0].read_bytes() == data
    again = fetch(market, "rita", booth, tmp_path / "rita")
    assert (again.chunks_downloaded, again.bytes_downloaded, again.chunks_cached) == (0, 0, 4)
    assert again.assets[0].read_bytes() == data

    sam = market.client("sam")
    manifest = market.client("rita").manifest(booth)
    urls = [part["url"] for part in manifest["assets"][0]["chunks"]]
    assert len(urls) == 4

    def sam_is_refused():
        with pytest.raises(PermissionDenied):
            sam.manifest(booth)
        for url in urls:
            with pytest.raises(PermissionDenied) as refused:
                sam.chunk("", url)
            assert refused.value.status == 403

    sam_is_refused()
    grant_user(page, namespace, "sam")
    assert fetch(market, "sam", booth, tmp_path / "sam").assets[0].read_bytes() == data
    screenshot(page, "upload-readers")
    revoke_user(page, namespace, "sam")
    sam_is_refused()
    assert page.errors == []


def test_an_upload_cut_off_by_a_reload_carries_on_and_sends_each_chunk_once(
    page,  # noqa: F811
    market,
    tmp_path,
):
    booth = market.booths[1]
    namespace = market.namespace(booth, "glass")
    data = random_bytes(5 * MIB + 1234, seed=2)
    hashes = chunk_hashes(data)
    stored, held = Counter(), []

    def hold_after_two(route, request):
        """Let two chunks through, then keep the next one waiting until the reload."""
        chunk = PUT_CHUNK.search(request.url).group(1)
        if request.method == "PUT" and sum(stored.values()) >= 2 and not held:
            held.append(route)
            return
        stored[chunk] += 1
        route.continue_()

    page.route(PUT_CHUNK, hold_after_two)
    sign_in(page, market, "anne")
    choose_file(page, namespace, "window.bin", data)
    page.locator(".upload", has_text="Sending chunk 3 of 6").wait_for()
    while not held:
        page.wait_for_timeout(50)
    screenshot(page, "upload-before-reload")

    page.reload()
    row = finished(page, "window.bin")
    assert "2 of 6 chunks were stored before the page was closed" in row.inner_text()
    assert stored == Counter(hashes)  # each chunk reached the server once
    assert row.get_attribute("data-sent") == "4" and row.get_attribute("data-held") == "2"
    screenshot(page, "upload-resumed")
    assert fetch(market, "anne", booth, tmp_path).assets[0].read_bytes() == data
    assert page.errors == []


def test_a_reload_after_the_market_recorded_the_asset_records_it_once(page, market):  # noqa: F811
    """The market records the asset, but the page is reloaded before it hears so (and so
    before it forgets the upload): the upload carries on, records it again, and the booth
    still holds it once."""
    namespace = market.namespace(market.booths[1], "record-once")
    data = random_bytes(MIB + 321, seed=5)
    held = []

    def record_then_hold(route, request):
        if request.method != "POST":
            route.continue_()
            return
        if not held:
            route.fetch()  # the market records the asset; the page never hears of it
            held.append(route)
            return
        route.continue_()

    page.route(re.compile(r"/shards/\d+/assets$"), record_then_hold)
    sign_in(page, market, "anne")
    choose_file(page, namespace, "twice.bin", data)
    while not held:
        page.wait_for_timeout(50)

    page.reload()
    finished(page, "twice.bin")
    counted = market.server.manage(
        "shell",
        "-c",
        "from chunks.models import Asset; print(Asset.objects.filter(name='twice.bin').count())",
    )

    assert counted.returncode == 0, counted.stderr
    assert counted.stdout.split()[-1] == "1"
    assert page.errors == []


def test_uploading_the_same_file_again_sends_no_chunk(page, market):  # noqa: F811
    namespace = market.namespace(market.booths[2], "pixels")
    data = random_bytes(2 * MIB + 99, seed=3)
    sign_in(page, market, "anne")
    choose_file(page, namespace, "sprite.bin", data)
    finished(page, "sprite.bin")

    puts = count_puts(page)
    choose_file(page, namespace, "sprite.bin", data)
    again = finished(page, "sprite.bin", nth=1)

    assert puts == Counter()
    assert (again.get_attribute("data-sent"), again.get_attribute("data-held")) == ("0", "3")
    assert "3 chunks" in again.inner_text()
    screenshot(page, "upload-again")
    assert page.errors == []


def test_every_kind_of_reader_is_granted_and_revoked_from_the_page(page, market):  # noqa: F811
    namespace = market.namespace(market.booths[0], "shared")
    sign_in(page, market, "anne")
    card = readers_card(page, namespace)
    kind, who = card.locator("select[name=kind]"), card.locator("input[name=who]")
    grant = card.get_by_role("button", name="Grant read access")

    who.fill("nobody")
    grant.click()
    card.get_by_role("alert").filter(has_text="No user named 'nobody'").wait_for()
    kind.select_option("group")
    who.fill("press")
    grant.click()
    for each in ("visitors", "everyone"):
        kind.select_option(each)
        assert who.is_hidden()
        grant.click()
    labels = ["everyone", "group press", "visitors of this booth"]
    for label in labels:
        card.locator(".reader-list li", has_text=label).wait_for()
    screenshot(page, "upload-reader-kinds")

    for label in labels:
        card.get_by_role("button", name=f"Revoke {label}").click()
        card.locator(".reader-list li", has_text=label).wait_for(state="detached")
    assert "Nobody else yet" in card.inner_text()
    # Chromium logs the one refused grant (the unknown user) on the console; nothing else.
    assert page.errors == [
        "Failed to load resource: the server responded with a status of 400 (Bad Request)"
    ]


def test_several_files_dropped_on_the_zone_are_uploaded_one_after_another(page, market):  # noqa: F811
    namespace = market.namespace(market.booths[2], "drops")
    sign_in(page, market, "anne")
    page.select_option("#target", str(namespace))
    transfer = page.evaluate_handle(
        """() => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(1500000).fill(7)], "first.bin"));
            transfer.items.add(new File(["a small second file"], "second.txt"));
            return transfer;
        }"""
    )
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": transfer})

    first, second = finished(page, "first.bin"), finished(page, "second.txt")
    assert "2 chunks, 1.4 MiB (1,500,000 bytes)" in first.inner_text()
    assert "1 chunk, 19 bytes." in second.inner_text()
    assert page.errors == []


def test_signing_out_and_in_as_someone_who_may_write_nothing_shows_why(page, market):  # noqa: F811
    sign_in(page, market, "anne")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(market.url + "/")
    page.get_by_role("link", name="Sign in").click()
    page.fill("#id_username", "sam")
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    page.wait_for_url(market.url + "/upload/")
    assert "No booth to upload to yet" in page.inner_text("main")
    assert page.locator("#files").count() == 0
    screenshot(page, "upload-empty")
    assert page.errors == []

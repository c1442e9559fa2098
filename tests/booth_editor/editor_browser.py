"""Steps of the booth editor's browser tests: a live market, its creator, uploads, placing."""

import json
from dataclasses import dataclass

from tests.browser import screenshot
from tests.chunks.upload_browser import choose_file, finished
from tests.live import LiveMarket

PASSWORD = "weft and warp"
BOOTHS = """
import json
from market.models import Booth
print(json.dumps([booth.pk for booth in Booth.objects.order_by("zone_index")]))
"""


@dataclass
class CreatorMarket:
    """A live market whose booth at zone 1 has the creator cleo."""

    server: LiveMarket
    booths: list[int]

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def booth(self) -> int:
        return self.booths[1]


def with_creator(server: LiveMarket) -> CreatorMarket:
    listed = server.manage("shell", "-c", BOOTHS)
    assert listed.returncode == 0, listed.stderr
    booths = json.loads(listed.stdout.strip().splitlines()[-1])
    made = server.manage("creator_add", "cleo", "--booth", str(booths[1]), "--password", PASSWORD)
    assert made.returncode == 0, made.stderr
    return CreatorMarket(server, booths)


def sign_in(page, market: CreatorMarket) -> None:
    page.goto(market.url + "/accounts/login/?next=/upload/")
    page.fill("#id_username", "cleo")
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(market.url + "/upload/")


def upload(page, market: CreatorMarket, name: str, data: bytes, *, refused: bool = False):
    """Upload one file through the upload page; its row once done (or failed, if `refused`)."""
    if not page.url.endswith("/upload/"):
        page.goto(market.url + "/upload/")
    option = page.locator(f'#target option[data-booth="{market.booth}"]').first
    choose_file(page, int(option.get_attribute("value")), name, data)
    if not refused:
        return finished(page, name)
    row = page.locator(f'.upload[data-name="{name}"]').first
    page.wait_for_function(
        "row => row.dataset.state === 'failed'", arg=row.element_handle(), timeout=60_000
    )
    return row


def open_editor(page, market: CreatorMarket, assets: int):
    """The editor of cleo's booth, once its `assets` assets and the layout are loaded."""
    page.goto(f"{market.url}/booths/{market.booth}/arrange/")
    page.wait_for_function(
        "n => document.querySelectorAll('#assets .asset').length === n", arg=assets
    )
    page.wait_for_function(
        "() => /version \\d+/.test(document.getElementById('layout-state').textContent)"
    )


def place(page, name: str, x: float, z: float, rotation: int = 0, scale: float = 1.0) -> None:
    """Place asset `name` with the Place button, then type its position, turn and scale."""
    page.locator(".asset", has_text=name).get_by_role("button", name="Place").click()
    for field, value in (("x", x), ("z", z), ("rotation", rotation), ("scale", scale)):
        page.fill(f"#field-{field}", str(value))
        page.press(f"#field-{field}", "Enter")


def publish(page) -> str:
    """Press Publish; the message the page shows afterwards."""
    before = page.locator("#message").text_content() or ""
    page.get_by_role("button", name="Publish").click()
    page.wait_for_function(
        "before => { const m = document.getElementById('message'); "
        "return !m.hidden && m.textContent !== before; }",
        arg=before,
    )
    return page.locator("#message").text_content() or ""


def shot(page, name: str) -> None:
    screenshot(page, name)

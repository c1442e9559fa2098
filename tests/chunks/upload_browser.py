"""Helpers of the upload page's browser tests: a live market with people, and the page's steps."""

import base64
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from chunks.client import AssetClient, ChunkCache
from tests.browser import screenshot
from tests.live import LiveMarket

PASSWORD = "loom and shuttle"
MIB = 1 << 20
PEOPLE = """
import json
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from market.models import Booth

for name in ("anne", "rita", "sam"):
    get_user_model().objects.create_user(name, password={password!r})
Group.objects.create(name="press")
print(json.dumps([booth.pk for booth in Booth.objects.order_by("zone_index")]))
"""
PUT_CHUNK = re.compile(r"/chunks/([0-9a-f]{64})\?")


@dataclass
class PeopledMarket:
    """A live market with the creator anne, the reader rita, the stranger sam, the group press."""

    server: LiveMarket
    booths: list[int]

    @property
    def url(self) -> str:
        return self.server.url

    def namespace(self, booth: int, slug: str) -> int:
        """A new namespace of `booth` that anne may write; its id."""
        made = self.server.manage(
            "namespace_create", "--booth", str(booth), "--slug", slug, "--writer", "anne"
        )
        assert made.returncode == 0, made.stderr
        return int(re.match(r"namespace (\d+) ", made.stdout).group(1))

    def client(self, username: str) -> AssetClient:
        """The Python asset client, signed in as `username` with HTTP Basic."""
        token = base64.b64encode(f"{username}:{PASSWORD}".encode()).decode()
        return AssetClient(self.url, headers={"Authorization": f"Basic {token}"})


def peopled(server: LiveMarket) -> PeopledMarket:
    made = server.manage("shell", "-c", PEOPLE.format(password=PASSWORD))
    assert made.returncode == 0, made.stderr
    return PeopledMarket(server, json.loads(made.stdout.strip().splitlines()[-1]))


def random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def sign_in(page, market: PeopledMarket, username: str, shot: str = "") -> None:
    """Open the upload page, get sent to the login page, sign in, come back."""
    page.goto(market.url + "/upload/")
    page.wait_for_url("**/accounts/login/?next=/upload/")
    if shot:
        screenshot(page, shot)
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(market.url + "/upload/")


def choose_file(page, namespace: int, name: str, data: bytes) -> None:
    page.select_option("#target", str(namespace))
    page.set_input_files(
        "#files", files=[{"name": name, "mimeType": "application/octet-stream", "buffer": data}]
    )


def finished(page, name: str, nth: int = 0, timeout: float = 60_000):
    """The `nth` row of file `name` once it is done (failing fast if it stops)."""
    row = page.locator(f'.upload[data-name="{name}"]').nth(nth)
    row.locator(".upload-status").wait_for(timeout=timeout)
    page.wait_for_function(
        "row => ['done', 'failed'].includes(row.dataset.state)",
        arg=row.element_handle(),
        timeout=timeout,
    )
    assert row.get_attribute("data-state") == "done", row.inner_text()
    return row


def readers_card(page, namespace: int):
    return page.locator(f'.readers[data-namespace="{namespace}"]')


def grant_user(page, namespace: int, username: str) -> None:
    card = readers_card(page, namespace)
    card.locator("select[name=kind]").select_option("user")
    card.locator("input[name=who]").fill(username)
    card.get_by_role("button", name="Grant read access").click()
    card.locator(".reader-list li", has_text=username).wait_for()


def revoke_user(page, namespace: int, username: str) -> None:
    card = readers_card(page, namespace)
    card.get_by_role("button", name=f"Revoke {username}").click()
    card.locator(".reader-list li", has_text=username).wait_for(state="detached")


def fetch(market: PeopledMarket, username: str, booth: int, where: Path):
    """Fetch the booth as `username` into `where`/cache and `where`/out; the report."""
    return market.client(username).fetch_booth(booth, ChunkCache(where / "cache"), where / "out")

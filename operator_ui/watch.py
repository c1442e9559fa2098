"""A headless dashboard: signs in as an operator and saves what the page shows.

Used by `manage.py smokeburst` to keep top-down and orbit pictures of a burst.
It needs Playwright (requirements-test.txt) and a Chromium executable: Debian's
`chromium` package, or the path in the CHROMIUM variable.
"""

import os
import secrets
import shutil
from pathlib import Path
from types import TracebackType
from typing import Any

from django.contrib.auth import get_user_model

from market.rebac.services import rebac_tuple_write

WATCHER = "smoke-watcher"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]


class WatchError(Exception):
    """The dashboard could not be opened; the message says what to do."""


def watcher_credentials(market_id: int) -> tuple[str, str]:
    """The watcher account, an operator of the market, with a fresh password."""
    users = get_user_model()
    user = users.objects.filter(username=WATCHER).first() or users(username=WATCHER)
    password = secrets.token_urlsafe(18)
    user.set_password(password)
    user.save()
    rebac_tuple_write(object=f"market:{market_id}", relation="operator", user=f"user:{user.pk}")
    return WATCHER, password


def chromium_path() -> str | None:
    """The Chromium executable: CHROMIUM, else Debian's `chromium` on the PATH; None if none."""
    return (
        os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )


def chromium() -> str:
    found = chromium_path()
    if not found:
        raise WatchError("no Chromium found: apt-get install -y chromium (or set CHROMIUM)")
    return found


class Dashboard:
    """The dashboard open in headless Chromium, signed in; use as a context manager."""

    def __init__(self, url: str, username: str, password: str, out: Path) -> None:
        self.url, self.username, self.password, self.out = url.rstrip("/"), username, password, out

    def __enter__(self) -> "Dashboard":
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            raise WatchError(
                "the screenshots need Playwright: pip install -r requirements-test.txt"
            ) from None
        self._playwright = sync_playwright().start()
        browser = self._playwright.chromium.launch(
            executable_path=chromium(), headless=True, args=CHROMIUM_ARGS
        )
        self.page: Any = browser.new_page(viewport={"width": 1440, "height": 900})
        try:
            self.page.goto(f"{self.url}/accounts/login/?next=/dashboard/", timeout=10_000)
            self.page.fill("input[name=username]", self.username)
            self.page.fill("input[name=password]", self.password)
            self.page.click("form [type=submit]")
            self.page.wait_for_url("**/dashboard/", timeout=10_000)
            self.page.wait_for_selector("#feed-status.live", timeout=15_000)
        except Exception as error:
            self._playwright.stop()
            first_line = str(error).splitlines()[0]
            raise WatchError(
                f"the dashboard at {self.url}/dashboard/ did not go live ({first_line}); "
                "is the market running there, and sharing this database?"
            ) from None
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._playwright.stop()

    def mode(self, wanted: str) -> None:
        """Switch to "topdown" or "orbit" with Tab, as an operator would."""
        if self.page.evaluate("window.fabricDashboard.mode") != wanted:
            self.page.keyboard.press("Tab")
            self.page.wait_for_timeout(400)  # the orbit view builds its scene on first use

    def save(self, name: str) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path

    def text(self, selector: str) -> str:
        return str(self.page.inner_text(selector))

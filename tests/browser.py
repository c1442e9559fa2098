"""Headless Chromium from Debian's package, driven by Playwright.

Never a browser downloaded by a test tool: Playwright is pointed at the
system executable. Where Chromium is missing the browser tests skip with the
command to install it, except in CI, where they fail.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from operator_ui.watch import chromium_path
from tests.conftest import service_missing
from tests.subprocesses import REPO_ROOT

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO_ROOT / "artifacts" / "screenshots"


@pytest.fixture
def browser() -> Iterator[Any]:
    """A browser per test: Playwright's sync API holds an event loop while it runs,
    which must not outlive the test (other tests call asyncio.run)."""
    executable = chromium_path()
    if executable is None:
        service_missing(
            "Chromium is not installed; install Debian's package: apt-get install -y chromium"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context and page, with console errors collected in `page.errors`."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.errors = []
    page.on("console", lambda message: message.type == "error" and page.errors.append(message.text))
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    yield page
    context.close()


def screenshot(page: Any, name: str) -> Path:
    """Save a screenshot under artifacts/screenshots/ (kept by CI as a test artifact)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path

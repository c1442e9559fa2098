"""The browser fixtures (tests/browser.py) for the visitor page's tests."""

from tests.browser import browser, page  # noqa: F401  (fixtures)

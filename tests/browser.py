"""Headless Chromium for the page tests: Debian's /usr/bin/chromium driven by Playwright (never a
downloaded browser), one launch per test module, pages at phone size (390×844) by default.

A pytest plugin (pyproject's addopts: `-p tests.browser`), so the browser modules share these
fixtures without importing them. Without Chromium or Playwright, the tests that ask for `browser`
are skipped with the reason.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.conf import settings
from django.core.cache import cache

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from playwright.sync_api import Browser, BrowserContext, Page
    from pytest_django import Settings

CHROMIUM = Path("/usr/bin/chromium")
# As this machine needs them: no sandbox as root, and nothing that reaches out to Google's hosts.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium for the module. Playwright's sync API runs an event loop in this thread, and
    the ORM calls a test makes between page actions are still synchronous: Django is told so
    while the browser is up (DJANGO_ALLOW_ASYNC_UNSAFE), and only then."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium fonts-noto-cjk)")
    try:
        from playwright.sync_api import sync_playwright  # noqa: PLC0415 — optional: skip without it
    except ImportError:  # pragma: no cover
        pytest.skip("playwright is not installed")
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def open_page(browser: Browser) -> Iterator[Callable[..., Page]]:
    """`open_page(locale)`: a page in a context of its own (closed after the test), phone-sized
    unless `viewport` says otherwise, 10 s for any wait."""
    contexts: list[BrowserContext] = []

    def _open(locale: str, viewport: dict[str, int] | None = None) -> Page:
        context = browser.new_context(viewport=viewport or PHONE, locale=locale)  # type: ignore[arg-type]
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield _open
    for context in contexts:
        context.close()


@pytest.fixture
def fresh_limits() -> Iterator[None]:
    """Rate limits and one-time-code counters (in the cache) start empty and are left empty."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def platform_sender(settings: Settings) -> None:
    """The hub's codes go through the platform's sender: the outbox here."""
    settings.LANZUAN_PLATFORM_SMS_URL = ""
    settings.LANZUAN_FILE_GATEWAY = True


@pytest.fixture
def shots() -> Path:
    """Where screenshots go: this session's own VAR_DIR (tests/sandbox.py)."""
    folder = Path(settings.VAR_DIR) / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder

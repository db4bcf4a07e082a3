"""Headless Chromium for the page tests, with the outside world cut off: a page whose
requests to anywhere but 127.0.0.1 are aborted and recorded. A pytest plugin: the console's
browser (`zh_browser`) and where screenshots go (`shots`) are fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="the browser test needs /usr/bin/chromium (apt-get install chromium)",
)


@contextmanager
def chromium(*extra_args: str) -> Iterator:
    """Chromium launched headless with `ARGS` and `extra_args`, closed when done."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=[*ARGS, *extra_args]
        )
        yield launched
        launched.close()


def local_page(browser, **options) -> tuple:
    """A new context (`options` as `new_context` takes them) and page whose requests to
    anywhere but 127.0.0.1 are aborted: (context, page, urls that tried to leave, the
    page's script errors)."""
    # bypass_csp: only so the test can evaluate its own probes; the page runs as served.
    context = browser.new_context(bypass_csp=True, **options)
    left: list[str] = []
    errors: list[str] = []

    def only_local(route):
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            left.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return context, page, left, errors


@pytest.fixture(scope="module")
def zh_browser():
    """Chromium in Chinese: the browser's own words (a date field's placeholder) too."""
    with chromium("--lang=zh-CN") as launched:
        yield launched


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    """Where screenshots go: GRIDWATCH_SCREENSHOTS, or the test's own temporary folder."""
    chosen = os.environ.get("GRIDWATCH_SCREENSHOTS")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("console")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def log_in(page, base_url: str, token: str, path: str) -> None:
    """Open `path` (a browser without a session is sent to the login form), log in with
    `token`, and wait to be back at `path`."""
    page.goto(f"{base_url}{path}")
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"**{path}")

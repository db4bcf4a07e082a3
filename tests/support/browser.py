"""Headless Chromium for the page tests, with the outside world cut off: a page whose
requests to anywhere but 127.0.0.1 are aborted and recorded."""

from __future__ import annotations

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

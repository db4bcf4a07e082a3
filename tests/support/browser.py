"""Headless Chromium for the page tests, with the outside world cut off: a page whose
requests to anywhere but 127.0.0.1 are aborted and recorded. A pytest plugin: the console's
browser (`zh_browser`) and where screenshots go (`shots`) are fixtures. And the steps the
page tests share: logging in, the phone view at a phone's size with its GPS, a step taken on
a task of the phone or on a case's page."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

CHROMIUM = Path("/usr/bin/chromium")
PHONE = {"width": 390, "height": 844}
DESK = {"width": 1366, "height": 800}
WIDE_ENOUGH = "document.documentElement.scrollWidth <= window.innerWidth"
# Every control a thumb presses on the phone view is at least 44 px high.
SMALL_TARGETS = """() => [...document.querySelectorAll(
    '.gw-phone button, .gw-phone select, .gw-phone label.gw-photo-button, ' +
    '.gw-phone input:not([type=radio]):not([type=checkbox]):not([type=file])')]
  .filter(e => e.offsetParent !== null && e.getBoundingClientRect().height < 44)
  .map(e => e.outerHTML.slice(0, 80))"""
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


def phone_view(browser, base_url: str, token: str, where: dict, viewport=PHONE) -> tuple:
    """The phone view /m logged in with `token` in a phone's context (Chinese, touch, the GPS
    at `where`), its live streams open: (context, page, urls that tried to leave, errors)."""
    context, page, left, errors = local_page(
        browser,
        viewport=viewport,
        locale="zh-CN",
        geolocation=where,
        permissions=["geolocation"],
        has_touch=True,
        is_mobile=True,
    )
    log_in(page, base_url, token, "/m")
    page.wait_for_function("window.gridwatchPhone.streams.every(s => s.readyState === 1)")
    return context, page, left, errors


def phone_task(page, kind: str, key: str):
    """The task `kind:key` of the phone view's list."""
    return page.locator(f'#gw-tasks li[data-key="{kind}:{key}"]')


def confirm_form(page, form: str) -> None:
    """Press the confirm button of the phone view's form `form`."""
    page.click(f"#gw-form-{form} [data-action=confirm]")


def take_task_step(page, step: str, key: str, status: str) -> None:
    """Confirm the phone view's open form of `step`; wait for the task `key` to show
    `status`."""
    confirm_form(page, step)
    page.wait_for_function(
        f"""document.querySelector('li[data-key="{key}"] .gw-badge').textContent === '{status}'"""
    )


def take_case_step(page, action: str, form: str, fields: dict[str, str], state: str) -> None:
    """Take a case's step on its page: click `action`, fill its `form` (field selector →
    value; a select's option is chosen), confirm, and wait until the case reads `state`."""
    page.click(f"[data-action={action}]")
    for field, value in fields.items():
        put = page.select_option if field.startswith("select") else page.fill
        put(f"#gw-form-{form} {field}", value)
    page.click(f"#gw-form-{form} [data-action=confirm]")
    page.wait_for_function(f"document.querySelector('#gw-state').textContent === '{state}'")

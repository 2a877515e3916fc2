"""Headless Chromium (Debian's, no browser download) driven by Playwright, for the dashboard's tests: a
page that records every console error, uncaught exception and dialog, so a test can say there were none."""
import shutil
import time
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import sync_playwright

ADMIN_KEY = "admin-key-0123456789abcdef"


def chromium():
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        raise RuntimeError("chromium is not installed: apt-get install chromium (scripts/system-packages does)")
    return binary


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        # --no-sandbox: the tests run as root in a container, where Chromium's sandbox cannot start.
        launched = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])
        yield launched
        launched.close()


# Chromium logs every 4xx/5xx fetch as a console error without its URL; those are kept, with it, in `failed`.
_FAILED_FETCH = "Failed to load resource"


class Watched:
    """A page and what went wrong on it: console errors and uncaught exceptions (`errors`), answers of 400 and
    up ((status, path) in `failed`) and dialogs; confirm() dialogs are accepted."""

    def __init__(self, page):
        self.page, self.errors, self.failed, self.dialogs = page, [], [], []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("response", self._response)
        page.on("dialog", self._dialog)
        self.pending = set()  # requests sent and not yet answered (or failed)
        page.on("request", lambda request: self.pending.add(request))  # Playwright wants Python functions
        page.on("response", lambda response: self.pending.discard(response.request))  # a body unread counts
        page.on("requestfailed", lambda request: self.pending.discard(request))

    def settle(self, timeout=30.0):
        """Wait until every request the page sent has its answer."""
        deadline = time.monotonic() + timeout
        while self.pending:
            assert time.monotonic() < deadline, f"requests unanswered: {[r.url for r in self.pending]}"
            self.page.wait_for_timeout(50)  # lets Playwright deliver the events that empty `pending`

    def _console(self, message):
        if message.type == "error" and not message.text.startswith(_FAILED_FETCH):
            self.errors.append(message.text)

    def _response(self, response):
        if response.status >= 400:
            self.failed.append((response.status, urlsplit(response.url).path))

    def _dialog(self, dialog):
        self.dialogs.append((dialog.type, dialog.message))
        dialog.accept()

    def sign_in(self, url, key=ADMIN_KEY):
        """Open `url`, type the admin key into the form it asks with, and wait for the figures."""
        self.page.goto(url)
        self.page.wait_for_selector("body[data-state='auth']")
        # The page asks for its figures at once and shows the form at the first 401; the others' refusals
        # may land later, and would otherwise be counted as failures after the key was typed in.
        self.settle()
        assert 401 in {status for status, _ in self.failed}, self.failed
        self.failed.clear()  # asking without the key was refused, as it should be (a stubbed 404 aside)
        self.page.fill("#admin-key", key)
        self.page.click("#auth button[type=submit]")
        self.ready()

    def ready(self):
        self.page.wait_for_selector("body[data-state='ready']", timeout=30_000)


@pytest.fixture
def watched(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = Watched(context.new_page())
    yield page
    context.close()
    # Outside the test's own asserts, so that every test proves it: the page logged no error, and no call
    # failed but those a test expected (and then cleared from `failed`).
    assert page.errors == [] and page.failed == [], (page.errors, page.failed)

"""Headless Chromium (Debian's, no browser download) driven by Playwright, for the dashboard's tests: a
page that records every console error, uncaught exception and dialog, so a test can say there were none."""
import shutil

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


class Watched:
    """A page and what went wrong on it; confirm() dialogs are accepted, and every dialog is kept."""

    def __init__(self, page):
        self.page, self.errors, self.dialogs = page, [], []
        page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("dialog", self._dialog)

    def _dialog(self, dialog):
        self.dialogs.append((dialog.type, dialog.message))
        dialog.accept()

    def sign_in(self, url, key=ADMIN_KEY):
        """Open `url`, type the admin key into the form it asks with, and wait for the figures."""
        self.page.goto(url)
        self.page.wait_for_selector("body[data-state='auth']")
        # Asking without a key was refused, as it should be: the browser logs each 401 as an error.
        self.errors[:] = [e for e in self.errors if "status of 401" not in e]
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
    # Outside the test's own asserts, so that every test proves it: the page logged no error.
    assert page.errors == [], page.errors

"""The dashboard in a real headless Chromium (Debian's package; scripts/test installs it)."""
import re
import shutil
import subprocess

import pytest
import requests

from tests import processes
from tests.conftest import KEYS, MODELS

pytestmark = pytest.mark.e2e

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--enable-logging=stderr", "--v=0"]


def chromium():
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        raise RuntimeError("chromium is not installed: apt-get install chromium (scripts/test does)")
    return binary


def render(url, tmp_path, *extra):
    result = subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                             "--virtual-time-budget=15000", *(extra or ("--dump-dom",)), url],
                            capture_output=True, text=True, timeout=120)
    return result.stdout, result.stderr


@pytest.fixture
def server(tmp_path, emulator):
    database = f"sqlite:///{tmp_path / 'dash.db'}"
    seeded = subprocess.run([processes.PYTHON, "-m", "flask", "--app", "wsgi", "ops", "seed", "--rows", "3000",
                             "--days", "2"], cwd=processes.ROOT, capture_output=True, text=True, timeout=120,
                            env=processes.base_env(DATABASE_URL=database, PYTHONPATH=processes.ROOT))
    assert seeded.returncode == 0, seeded.stderr
    process = processes.start_gunicorn(str(tmp_path), GEMINI_API_KEY=KEYS[0], GEMINI_BASE_URL=emulator.url,
                                       GEMINI_MODELS=",".join(MODELS), DATABASE_URL=database, WEB_CONCURRENCY=1)
    process.wait_ready(log_marker="Worker ready")
    for n in range(5):
        requests.post(f"{process.url}/gemini/generate", json={"prompt": {"text": f"live {n}"}}, timeout=30)
    yield process
    process.stop()


def test_dashboard_renders_every_chart_with_data_and_no_console_errors(server, tmp_path):
    dom, log = render(f"{server.url}/dashboard", tmp_path)
    assert 'data-state="ready"' in dom, dom[:2000]
    points = dict(re.findall(r'<canvas id="(c-[a-z]+)"[^>]*data-points="(\d+)"', dom))
    assert set(points) == {"c-requests", "c-tokens", "c-latency", "c-errors", "c-models", "c-cost"}
    assert all(int(n) > 0 for n in points.values()), points
    requests_tile = re.search(r'id="t-requests" class="value">([0-9.]+)(k?)<', dom)
    assert requests_tile and float(requests_tile.group(1)) * (1000 if requests_tile.group(2) else 1) > 500
    assert dom.count("<tr>") >= 21  # the header and twenty latest requests
    assert re.search(r'<p id="errors" class="errors" hidden=""></p>', dom)
    console_errors = [line for line in log.splitlines() if "CONSOLE" in line and ("Error" in line or "error" in line)]
    assert console_errors == [] and "Uncaught" not in log and "Content Security Policy" not in log


def test_dashboard_screenshot(server, tmp_path):
    """A picture of the page, for a person to look at (kept beside the test's temporary files)."""
    render(f"{server.url}/dashboard", tmp_path, f"--screenshot={tmp_path / 'dashboard.png'}",
           "--window-size=1280,1400")
    assert (tmp_path / "dashboard.png").stat().st_size > 20_000  # not a blank page


def test_dashboard_works_offline_from_its_own_assets(server):
    page = requests.get(f"{server.url}/dashboard", timeout=10)
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(a.startswith("/dashboard/static/") for a in assets)
    for asset in assets:
        assert requests.get(server.url + asset, timeout=10).status_code == 200
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]


def test_dashboard_asks_for_the_admin_key_when_keys_are_on(tmp_path, emulator):
    process = processes.start_gunicorn(str(tmp_path), GEMINI_API_KEY=KEYS[0], GEMINI_BASE_URL=emulator.url,
                                       DATABASE_URL=f"sqlite:///{tmp_path / 'k.db'}", WEB_CONCURRENCY=1,
                                       API_KEYS="client-key-0123456789", ADMIN_API_KEY="admin-key-0123456789abcdef")
    try:
        process.wait_ready(log_marker="Worker ready")
        dom, _ = render(f"{process.url}/dashboard", tmp_path)
    finally:
        process.stop()
    assert 'data-state="auth"' in dom and '<form id="auth">' in dom

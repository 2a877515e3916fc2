"""The overview page in a real headless Chromium (Playwright on Debian's Chromium) against Gunicorn: every
chart drawn by Chart.js, with points on the canvas even when all the data fall in one hour."""
import re
import subprocess

import pytest
import requests

from tests import processes
from tests.browser import ADMIN_KEY, browser, watched  # noqa: F401 (fixtures)
from tests.conftest import MODELS, native_over_http, wait_settled

pytestmark = pytest.mark.e2e

LINE_CHARTS = ("c-requests", "c-tokens", "c-latency", "c-errors")
BAR_CHARTS = ("c-models", "c-cost")

# What Chart.js holds for a chart, and the canvas pixel under each point (a bar: its middle): drawn, not
# merely computed. Chart.getChart is Chart.js's own registry of the charts on a page.
CHART_STATE = """(id) => {
  const chart = Chart.getChart(id);
  if (!chart) return null;
  const ratio = chart.currentDevicePixelRatio, area = chart.chartArea;
  const points = [];
  chart.data.datasets.forEach((dataset, n) => chart.getDatasetMeta(n).data.forEach((element, i) => {
    if (dataset.data[i] === null || dataset.data[i] === undefined) return;
    const y = chart.config.type === "bar" ? (element.y + element.base) / 2 : element.y;
    const pixel = chart.ctx.getImageData(Math.round(element.x * ratio), Math.round(y * ratio), 1, 1).data;
    points.push({ inside: element.x >= area.left - 1 && element.x <= area.right + 1 && y >= area.top - 1
                          && y <= area.bottom + 1,
                  radius: element.options.radius, painted: pixel[3] > 0 && (pixel[0] < 240 || pixel[1] < 240) });
  }));
  const valued = chart.data.datasets.map((d) => d.data.filter((v) => v !== null && v !== undefined).length);
  return { type: chart.config.type, buckets: chart.data.labels.length, points, valued,
           ticks: chart.scales.x.ticks.map((tick) => tick.label) };
}"""


def chart_states(page):
    return {name: page.evaluate(CHART_STATE, name) for name in LINE_CHARTS + BAR_CHARTS}


def assert_drawn(states):
    for name, state in states.items():
        assert state is not None, f"{name}: no Chart.js chart"
        assert state["points"], f"{name}: no point drawn"
        assert all(p["inside"] and p["painted"] for p in state["points"]), (name, state)
        if state["type"] == "line":
            assert all(p["radius"] > 0 for p in state["points"]), (name, "points not visible")


@pytest.fixture
def fresh(gunicorn):
    """A server with an admin key whose only records were made through it, a minute ago: one hour's bucket."""
    server = gunicorn(ADMIN_API_KEY=ADMIN_KEY, WEB_CONCURRENCY=1)
    for n in range(3):
        assert requests.post(f"{server.url}/gemini/generate", json={"prompt": {"text": f"one hour {n}"}},
                             timeout=30).status_code == 200
    assert native_over_http(server, "native in the same hour",
                            path=f"/v1beta/models/{MODELS[1]}:generateContent").status_code == 200  # a second model
    wait_settled(server, ADMIN_KEY)
    return server


def test_line_charts_of_a_single_hour_show_their_points(fresh, watched):
    watched.sign_in(f"{fresh.url}/dashboard")
    states = chart_states(watched.page)
    # The bug: a line with one valued bucket among empty ones (null latency, no error rate) drew nothing.
    assert states["c-latency"]["valued"] == [1, 1, 1] and states["c-errors"]["valued"] == [1]
    assert states["c-latency"]["buckets"] > 1
    assert_drawn(states)
    assert watched.page.text_content("#t-requests") == "4"
    assert watched.page.locator("#latest tr").count() == 4
    watched.page.select_option("#window", "1")  # the last hour: one or two hourly buckets, still drawn
    watched.ready()
    states = chart_states(watched.page)
    assert 1 <= states["c-latency"]["buckets"] <= 2 and states["c-latency"]["valued"] == [1, 1, 1]
    assert_drawn(states)
    assert watched.errors == [] and watched.dialogs == []


# Each x label's drawn width against its bar's slot: wider would overlap its neighbour.
LABEL_FIT = """(id) => {
  const chart = Chart.getChart(id), scale = chart.scales.x;
  chart.ctx.save();
  chart.ctx.font = Chart.helpers.toFont(scale.options.ticks.font).string;
  const widths = scale.ticks.map((tick) => chart.ctx.measureText(tick.label).width);
  chart.ctx.restore();
  return { slot: chart.chartArea.width / scale.ticks.length, widths, shown: scale.ticks.map((t) => t.label),
           names: chart.data.labels };
}"""


def test_model_labels_fit_their_bars_and_are_whole_in_the_tooltip(fresh, watched):
    watched.sign_in(f"{fresh.url}/dashboard")
    wide = watched.page.evaluate(LABEL_FIT, "c-models")
    assert sorted(wide["names"]) == sorted(MODELS) and wide["shown"] == wide["names"]  # room: names whole
    assert max(wide["widths"]) <= wide["slot"]
    watched.page.set_viewport_size({"width": 420, "height": 900})  # a phone: the charts shrink with the page
    watched.page.wait_for_function("() => Chart.getChart('c-models').width < 400")
    narrow = watched.page.evaluate(LABEL_FIT, "c-models")
    assert narrow["shown"] != narrow["names"] and all(label.endswith("…") for label in narrow["shown"]
                                                      if label not in narrow["names"])
    assert max(narrow["widths"]) <= narrow["slot"], narrow
    title = watched.page.evaluate("""() => {
      const chart = Chart.getChart("c-models");
      const bar = chart.getDatasetMeta(0).data[1];
      chart.tooltip.setActiveElements([{ datasetIndex: 0, index: 1 }], { x: bar.x, y: bar.y });
      chart.update();
      return chart.tooltip.title;
    }""")
    assert title == [narrow["names"][1]]  # whole, where the axis cut it


@pytest.fixture
def seeded(tmp_path, emulator, gunicorn):
    """Two days of synthetic history (ops seed) and a few live requests."""
    database = f"sqlite:///{tmp_path / 'dash.db'}"
    seeded = subprocess.run(
        [processes.PYTHON, "-m", "flask", "--app", "wsgi", "ops", "seed", "--rows", "3000", "--days", "2"],
        cwd=processes.ROOT, capture_output=True, text=True, timeout=120,
        env=processes.base_env(DATABASE_URL=database, PYTHONPATH=processes.ROOT))
    assert seeded.returncode == 0, seeded.stderr
    server = gunicorn(DATABASE_URL=database, WEB_CONCURRENCY=1)
    for n in range(5):
        requests.post(f"{server.url}/gemini/generate", json={"prompt": {"text": f"live {n}"}}, timeout=30)
    wait_settled(server)
    return server


def test_the_overview_of_two_days_draws_every_chart_with_no_console_error(seeded, watched, tmp_path):
    watched.page.goto(f"{seeded.url}/dashboard")  # an open proxy: no admin key asked
    watched.ready()
    states = chart_states(watched.page)
    assert all(states[name]["buckets"] > 1 for name in LINE_CHARTS), states
    assert_drawn(states)
    shown = re.fullmatch(r"([0-9.]+)(k?)", watched.page.text_content("#t-requests"))
    assert shown and float(shown.group(1)) * (1000 if shown.group(2) else 1) > 500
    assert watched.page.locator("#latest tr").count() == 20
    assert watched.page.is_hidden("#errors")
    watched.page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)  # for a person to look at
    assert watched.errors == []


def test_the_pages_load_only_their_own_assets(gunicorn):
    seeded = gunicorn(WEB_CONCURRENCY=1)
    for path in ("/dashboard", "/dashboard/requests", "/dashboard/clients"):
        page = requests.get(f"{seeded.url}{path}", timeout=10)
        assert page.status_code == 200
        assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        scripts = [a for a in assets if a.endswith(".js")]
        assert "/dashboard/static/vendor/chart.umd.min.js" in scripts and len(scripts) == 3
        for asset in assets:
            assert asset.startswith("/dashboard") or asset == "data:,", asset  # data:, no favicon fetched
            if asset.startswith("/dashboard/static/"):
                assert requests.get(seeded.url + asset, timeout=10).status_code == 200
        assert "default-src 'none'" in page.headers["Content-Security-Policy"]


def test_the_dashboard_asks_for_the_admin_key_when_keys_are_on(gunicorn, watched):
    server = gunicorn(API_KEYS="client-key-0123456789", ADMIN_API_KEY=ADMIN_KEY, WEB_CONCURRENCY=1)
    watched.page.goto(f"{server.url}/dashboard")
    watched.page.wait_for_selector("body[data-state='auth']")
    assert watched.page.is_visible("#admin-key")
    watched.page.fill("#admin-key", "not-the-admin-key")
    watched.page.click("#auth button[type=submit]")
    watched.page.wait_for_selector("body[data-state='auth']")
    watched.page.fill("#admin-key", ADMIN_KEY)
    watched.page.click("#auth button[type=submit]")
    watched.ready()
    assert watched.page.evaluate("sessionStorage.getItem('adminKey')") == ADMIN_KEY
    assert ADMIN_KEY not in watched.page.url
    assert {status for status, _ in watched.failed} == {401}  # before the key, and with the wrong one
    watched.failed.clear()

"""The dashboard against real data in headless Chromium: fifteen days of seeded history (a trend and a weekly
pattern), clients created through the page's own form with budgets, real requests with their keys; every
figure the pages show is checked against the API it came from."""
import json
import os
import subprocess
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from tests import processes
from tests.browser import ADMIN_KEY, browser, watched  # noqa: F401 (fixtures)
from tests.conftest import MODELS, wait_settled

pytestmark = pytest.mark.e2e

ADMIN = {"X-API-KEY": ADMIN_KEY}
# A cent a token of every kind: a request of ~30 billed tokens costs ~$0.30, so a few move a budget visibly.
PRICES = ",".join(f"{m}=10000/10000/10000" for m in MODELS)
# Where the screenshots go for a person to look at, when set (a folder that exists); otherwise the test's tmp.
SCREENS = Path(os.environ.get("DASHBOARD_SCREENS") or "/nonexistent")


@pytest.fixture
def real(tmp_path, gunicorn):
    """A server over 15 days of seeded history (2 % a day growth, weekly pattern, two synthetic clients)."""
    database = f"sqlite:///{tmp_path / 'real.db'}"
    seeded = subprocess.run(
        [processes.PYTHON, "-m", "flask", "--app", "wsgi", "ops", "seed", "--rows", "3000", "--days", "15",
         "--trend", "0.02", "--weekly", "--clients", "2"],
        cwd=processes.ROOT, capture_output=True, text=True, timeout=180,
        env=processes.base_env(DATABASE_URL=database, PYTHONPATH=processes.ROOT, MODEL_PRICES=PRICES))
    assert seeded.returncode == 0, seeded.stderr
    return gunicorn(DATABASE_URL=database, ADMIN_API_KEY=ADMIN_KEY, MODEL_PRICES=PRICES, WEB_CONCURRENCY=1)


def api(server, path, **params):
    answer = requests.get(f"{server.url}{path}", params=params, headers=ADMIN, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def generate(server, key, text):
    return requests.post(f"{server.url}/gemini/generate", headers={"X-API-KEY": key}, timeout=60, json={
        "prompt": {"text": text}, "generation_config": {"max_output_tokens": 30}})


def create_in_page(page, name, budget_usd, period):
    page.fill("#create [name=name]", name)
    page.fill("#create [name=budget_usd]", str(budget_usd))
    page.select_option("#create [name=budget_period]", period)
    page.click("#create button[type=submit]")
    page.wait_for_function(f"() => document.getElementById('issued-name').textContent === {json.dumps(name)}")
    key = page.text_content("#issued-key")
    page.click("#issued-dismiss")
    return key


def reload_capturing(watched, *paths):
    """Reload the page and return the JSON it got from each of `paths`, with the query it sent: the page's
    figures are checked against the very answer it drew them from, and the API asked again with its query."""
    got = {}

    def keep(response):
        path = urlsplit(response.url).path
        if path in paths and response.status == 200:
            got[path] = (dict(parse_qsl(urlsplit(response.url).query)), response.json())

    watched.page.on("response", keep)
    watched.page.reload()
    watched.ready()
    watched.page.remove_listener("response", keep)
    assert set(got) == set(paths), got.keys()
    return got


def usd(value):
    """The page's dollars (Dash.usd): cents below $100, whole and grouped above."""
    return f"${value:,.0f}" if value >= 100 else f"${value:,.2f}"


def screenshot(page, tmp_path, name, full_page=True):
    folder = SCREENS if SCREENS.is_dir() else tmp_path
    page.screenshot(path=str(folder / f"{name}.png"), full_page=full_page)


def client_row(page, name):
    return page.locator("#client-rows tr").filter(has=page.locator("td.name", has_text=name))


def test_the_clients_page_shows_each_budget_spent_and_the_forecast_as_the_apis_say(real, watched, tmp_path):
    page = watched.page
    watched.sign_in(f"{real.url}/dashboard/clients")
    budgets = {"steady": (5, "month"), "spender": (1, "day"), "idle": (2, "month")}
    keys = {name: create_in_page(page, name, *budget) for name, budget in budgets.items()}
    for n in range(3):
        assert generate(real, keys["steady"], f"steady {n}").status_code == 200
    for n in range(30):  # until the day's dollar is spent and the key refused
        answer = generate(real, keys["spender"], f"spender {n}")
        if answer.status_code == 429:
            assert answer.json()["error"]["code"] == "BUDGET_EXCEEDED"
            break
        assert answer.status_code == 200, answer.text
    else:
        pytest.fail("the spender's budget was never spent")
    wait_settled(real, ADMIN_KEY)

    got = reload_capturing(watched, "/admin/clients", "/analytics/forecast")
    listed = {c["name"]: c for c in api(real, "/admin/clients")}
    shown_to_page = {c["name"]: c["spent_usd"] for c in got["/admin/clients"][1]}
    assert shown_to_page == {name: c["spent_usd"] for name, c in listed.items()}
    for name, (budget, period) in budgets.items():
        client = listed[name]
        assert (client["budget_usd"], client["budget_period"]) == (budget, period)
        share = client["spent_usd"] / budget
        row = client_row(page, name)
        assert f"{usd(budget)} / {period}" in row.text_content()
        assert f"{usd(client['spent_usd'])} / {usd(budget)} ({share * 100:.0f} %)" in row.text_content()
        width = row.locator(".spend .fill").evaluate("e => e.style.width")
        assert abs(float(width.rstrip("%")) - min(100.0, share * 100)) <= 0.05, (name, width, share)
    assert listed["idle"]["spent_usd"] == 0 and listed["steady"]["spent_usd"] > 0
    assert 0 < listed["steady"]["spent_usd"] < 5  # part of the bar
    spender = client_row(page, "spender")
    assert listed["spender"]["spent_usd"] >= 1  # over by at most one request, and shown as spent:
    assert spender.locator(".spend .fill.over").evaluate("e => e.style.width") == "100%"
    assert "budget spent" in spender.locator(".over-label").text_content()
    assert listed["spender"]["budget_resets_at"][:10] in spender.locator(".over-label").text_content()
    assert "ran out" in spender.text_content() and "runs out" not in spender.text_content()
    assert client_row(page, "steady").locator(".over-label").count() == 0

    # The forecast tiles: the figures of the answer the page drew them from, which the API gives again.
    _, forecast = got["/analytics/forecast"]
    tiles = page.locator("#forecast .tile").all_text_contents()
    for tile, period in zip(tiles, ("day", "month")):
        cost = forecast["total"][period]["cost_usd"]
        assert usd(cost["expected"]) in tile and f"{usd(cost['low'])}–{usd(cost['high'])}" in tile, (tile, cost)
        assert f"so far {usd(cost['so_far'])}" in tile
    assert len(tiles) == 2 and forecast["seasonality"] == "weekly"
    assert f"from {forecast['history_days']} days of history, seasonality weekly" in page.text_content("#forecast")
    again = api(real, "/analytics/forecast")
    for period in ("day", "month"):  # nothing was asked meanwhile: what is spent is the same to the cent
        so_far = forecast["total"][period]["cost_usd"]["so_far"]
        assert again["total"][period]["cost_usd"]["so_far"] == pytest.approx(so_far)
    for predicted in forecast["clients"]:
        row, period = client_row(page, predicted["name"]), (predicted["budget"] or {}).get("period", "month")
        assert f"{usd(predicted[period]['cost_usd']['expected'])} this {period}" in row.text_content()
    screenshot(page, tmp_path, "clients")


def test_a_clients_spend_is_the_same_in_every_api_that_reports_it(real):
    """spent_usd (admin), the client's own /gemini/usage, /analytics/costs and /usage for its period, and the
    forecast's budget: one figure, however it is asked for."""
    made = {}
    for name, budget, period, count in (("monthly", 50, "month", 3), ("daily", 50, "day", 2)):
        created = requests.post(f"{real.url}/admin/clients", json={"name": name, "budget_usd": budget,
                                                                   "budget_period": period}, headers=ADMIN, timeout=30)
        assert created.status_code == 201, created.text
        made[name] = created.json()
        for n in range(count):
            assert generate(real, made[name]["api_key"], f"{name} {n}").status_code == 200
    wait_settled(real, ADMIN_KEY)
    listed = {c["id"]: c for c in api(real, "/admin/clients")}
    predicted = {c["client_id"]: c for c in api(real, "/analytics/forecast")["clients"]}
    for name, client in made.items():
        spent = listed[client["id"]]["spent_usd"]
        own = requests.get(f"{real.url}/gemini/usage", headers={"X-API-KEY": client["api_key"]}, timeout=30).json()
        window = {"from": own["period"]["starts_at"], "to": own["period"]["resets_at"], "client": client["id"]}
        costs = api(real, "/analytics/costs", **window)
        usage = api(real, "/analytics/usage", group_by="client", **window)["groups"]
        assert spent > 0 and [g["key"] for g in usage] == [f"{client['id']}:{name}"]
        assert {"admin": spent, "own budget": own["budget"]["spent_usd"], "own period": own["period"]["cost_usd"],
                "costs": costs["total_cost_usd"], "usage": usage[0]["cost_usd"],
                "forecast": predicted[client["id"]]["budget"]["spent_usd"]} == pytest.approx(
            dict.fromkeys(("admin", "own budget", "own period", "costs", "usage", "forecast"), spent)), name


def test_the_overview_and_the_request_log_show_the_apis_figures(real, watched, tmp_path):
    page = watched.page
    created = requests.post(f"{real.url}/admin/clients", json={"name": "live", "budget_usd": 20,
                                                               "budget_period": "month"}, headers=ADMIN, timeout=30)
    assert created.status_code == 201, created.text
    live = created.json()
    answers = [generate(real, live["api_key"], f"live {n}") for n in range(3)]
    # A native call too: the pass-through keeps its headers and bodies, so its drill-down is whole.
    answers.append(requests.post(f"{real.url}/v1beta/models/{MODELS[0]}:generateContent", timeout=60,
                                 json={"contents": [{"parts": [{"text": "What does the dashboard show?"}]}]},
                                 headers={"X-API-KEY": live["api_key"]}))
    assert all(answer.status_code == 200 for answer in answers)
    wait_settled(real, ADMIN_KEY)

    watched.sign_in(f"{real.url}/dashboard")
    got = reload_capturing(watched, "/analytics/summary")
    query, summary = got["/analytics/summary"]
    again = api(real, "/analytics/summary", **query)  # the page's own window, asked again
    assert again["cost_usd"] == summary["cost_usd"] and summary["cost_usd"] > 100
    assert page.text_content("#t-cost") == f"${summary['cost_usd']:,.2f}"
    count = summary["requests"]
    assert page.text_content("#t-requests") == (f"{count / 1000:.1f}k" if count >= 1000 else str(count))
    screenshot(page, tmp_path, "overview")

    page.goto(f"{real.url}/dashboard/requests")
    watched.ready()
    opened = answers[-1].headers["X-Request-ID"]
    page.click(f"#rows a[href='#{opened}']")
    page.wait_for_selector("#detail:not([hidden])")
    assert page.text_content("#d-id") == opened
    fields = dict(zip(page.locator("#d-fields dt").all_text_contents(),
                      page.locator("#d-fields dd").all_text_contents()))
    assert fields["Client"] == f"{live['id']} · live"  # the name, not an id to look up elsewhere
    client_cell = page.locator(f"#rows tr[data-request-id='{opened}'] td").nth(2)
    assert client_cell.get_attribute("title") == f"{live['id']} · live"
    assert "What does the dashboard show?" in page.text_content("#d-request-body")
    assert live["api_key"] not in page.content()
    screenshot(page, tmp_path, "request-log", full_page=False)  # as seen: the page scrolled to the request
    screenshot(page, tmp_path, "request-log-full")

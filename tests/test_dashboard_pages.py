"""The request log and clients pages clicked through in headless Chromium (Playwright) against Gunicorn,
with records made through it: filters, one request's drill-down, create / rotate / revoke, escaping."""
import json
from datetime import datetime, timedelta, timezone

import pytest
import requests

from tests.browser import ADMIN_KEY, browser, watched  # noqa: F401 (fixtures)
from tests.conftest import MODELS, wait_settled

pytestmark = pytest.mark.e2e

ADMIN = {"X-API-KEY": ADMIN_KEY}
HOSTILE = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">&amp;'


def issue(server, name):
    response = requests.post(f"{server.url}/admin/clients", json={"name": name}, headers=ADMIN, timeout=30)
    assert response.status_code == 201, response.text
    return response.json()


def generate(server, key, text):
    return requests.post(f"{server.url}/gemini/generate", json={"prompt": {"text": text}},
                         headers={"X-API-KEY": key}, timeout=30)


@pytest.fixture
def site(gunicorn):
    """Two clients; alpha made three generations, a native call and a malformed one; bravo one call."""
    server = gunicorn(ADMIN_API_KEY=ADMIN_KEY, WEB_CONCURRENCY=1)
    alpha, bravo = issue(server, "alpha"), issue(server, "bravo")
    for n in range(3):
        assert generate(server, alpha["api_key"], f"alpha {n}").status_code == 200
    native = requests.post(f"{server.url}/v1beta/models/{MODELS[0]}:generateContent",
                           json={"contents": [{"parts": [{"text": "the native prompt " + HOSTILE}]}]},
                           headers={"X-API-KEY": alpha["api_key"]}, timeout=30)
    assert native.status_code == 200
    bad = requests.post(f"{server.url}/gemini/generate", data="{not json", headers={
        "X-API-KEY": alpha["api_key"], "Content-Type": "application/json"}, timeout=30)
    assert bad.status_code == 400
    assert generate(server, bravo["api_key"], "bravo").status_code == 200
    wait_settled(server, ADMIN_KEY)
    server.alpha, server.bravo = alpha, bravo
    server.native_id, server.bad_status = native.headers["X-Request-ID"], bad.status_code
    return server


FILTERS = ("client", "model", "route", "status", "error_code", "from", "to")


def filter_log(page, **values):
    for name in FILTERS:
        page.fill(f"#filters [name={name}]", str(values.get(name, "")))
    page.select_option("#filters select[name=outcome]", values.get("outcome", ""))
    page.click("#filters button[type=submit]")
    page.wait_for_function("() => document.body.dataset.state === 'ready'")


def shown(page):
    """The log's rows as (request id, client, route, status), and the total it reports."""
    page.wait_for_selector("body[data-state='ready']")
    rows = page.eval_on_selector_all("#rows tr[data-request-id]", """rows => rows.map(r => [
        r.dataset.requestId, r.cells[2].textContent, r.cells[3].textContent, Number(r.cells[5].textContent)])""")
    return rows, int(page.text_content("#total"))


def test_the_request_log_filters_by_client_route_status_outcome_and_time(site, watched):
    page = watched.page
    watched.sign_in(f"{site.url}/dashboard/requests")
    rows, total = shown(page)
    assert total == len(rows) == 6

    filter_log(page, status=site.bad_status)
    rows, total = shown(page)
    assert total == 1 and [r[3] for r in rows] == [400]

    filter_log(page, client=site.bravo["id"])
    rows, total = shown(page)
    assert total == 1 and rows[0][1] == str(site.bravo["id"])

    filter_log(page, route="/gemini/generate", client=site.alpha["id"])
    rows, total = shown(page)
    assert total == 4 and {r[2] for r in rows} == {"/gemini/generate"}

    filter_log(page, outcome="error")
    rows, total = shown(page)
    assert total == 1 and rows[0][3] >= 400

    later = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    filter_log(page, **{"from": later, "to": later[:11] + "23:59:59" if later[11:] < "23:59:59" else later})
    if page.locator("#errors").is_visible():  # from == to near midnight: the API's 400 says so, not a 500
        assert "earlier" in page.text_content("#errors")
    else:
        assert shown(page) == ([], 0)
        assert "No request matches" in page.text_content("#rows")
    assert ADMIN_KEY not in page.url and "from=" in page.url  # filters shareable, the key kept out
    assert watched.errors == []


def test_a_request_opens_with_its_attempts_redacted_headers_and_bodies(site, watched, tmp_path):
    page = watched.page
    watched.sign_in(f"{site.url}/dashboard/requests")
    page.click(f"#rows a[href='#{site.native_id}']")
    page.wait_for_selector("#detail:not([hidden])")
    assert page.text_content("#d-id") == site.native_id
    attempts = page.eval_on_selector_all("#d-attempts tr", "rows => rows.map(r => r.cells[4].textContent)")
    assert len(attempts) >= 1 and attempts[-1] == "ok", attempts
    headers = dict(page.eval_on_selector_all("#d-request-headers tr", "rows => rows.map(r => [r.cells[0].textContent.toLowerCase(), r.cells[1].textContent])"))
    assert headers["x-api-key"] == "[redacted]"
    assert site.alpha["api_key"] not in page.content()
    assert "the native prompt " + json.dumps(HOSTILE)[1:-1] in page.text_content("#d-request-body")
    assert page.evaluate("window.pwned") is None and page.locator("#detail img, #detail script").count() == 0
    assert json.loads(page.text_content("#d-response-body"))["candidates"]
    page.screenshot(path=str(tmp_path / "request-log.png"), full_page=True)  # for a person to look at
    page.reload()  # the drill-down is in the URL (#id): a reload opens it again
    watched.ready()
    page.wait_for_selector("#detail:not([hidden])")
    assert page.text_content("#d-id") == site.native_id
    assert watched.errors == []


def client_row(page, name):
    return page.locator("#client-rows tr").filter(has=page.locator("td.name", has_text=name))


def test_clients_are_created_rotated_and_revoked_and_a_hostile_name_is_text(site, watched):
    page = watched.page
    page.route("**/analytics/forecast*", lambda route: route.fulfill(status=404, json={"error": {"code": "NOT_FOUND"}}))
    watched.sign_in(f"{site.url}/dashboard/clients")
    assert page.is_visible("#no-forecast")
    assert page.locator("#client-rows tr").count() == 2
    assert site.alpha["key_prefix"] in page.text_content("#client-rows")
    assert site.alpha["api_key"] not in page.content()  # prefixes only

    page.fill("#create [name=name]", HOSTILE)
    page.fill("#create [name=rate_limit]", "5/minute")
    page.click("#create button[type=submit]")
    page.wait_for_selector("#issued:not([hidden])")
    first = page.text_content("#issued-key")
    assert first.startswith("gp_") and page.text_content("#issued-name") == HOSTILE
    row = client_row(page, "window.pwned")
    row.wait_for()
    assert row.locator("td.name").text_content() == HOSTILE
    assert page.evaluate("window.pwned") is None and page.locator("#client-rows script, #client-rows img").count() == 0
    assert "5/minute" in row.text_content()
    assert generate(site, first, "hostile but valid").status_code == 200
    page.click("#issued-dismiss")
    assert first not in page.content()  # shown once
    assert first not in page.evaluate("JSON.stringify(sessionStorage) + JSON.stringify(localStorage)")

    row.locator("button[data-action=rotate]").click()
    page.wait_for_function(f"() => {{ const k = document.getElementById('issued-key').textContent; "
                           f"return k && k !== {json.dumps(first)}; }}")
    second = page.text_content("#issued-key")
    assert generate(site, first, "old key").status_code == 401
    assert generate(site, second, "new key").status_code == 200

    row.locator("button[data-action=revoke]").click()
    page.wait_for_function("() => [...document.querySelectorAll('#client-rows tr')].some("
                           "r => r.dataset.state === 'revoked' && r.textContent.includes('window.pwned'))")
    assert row.locator("button").count() == 0
    assert generate(site, second, "revoked").status_code == 401
    assert [kind for kind, _ in watched.dialogs] == ["confirm", "confirm"]  # no alert: nothing ran
    assert page.evaluate("sessionStorage.getItem('adminKey')") == ADMIN_KEY and ADMIN_KEY not in page.url

    page.fill("#create [name=name]", "bad limit")
    page.fill("#create [name=rate_limit]", "lots")
    page.click("#create button[type=submit]")
    page.wait_for_selector("#errors:not([hidden])")
    assert "rate_limit: 'lots' does not match" in page.text_content("#errors")
    assert page.text_content("#issued-key") == second  # no key issued
    assert client_row(page, "bad limit").count() == 0
    assert watched.errors == []
    assert set(watched.failed) == {(404, "/analytics/forecast"), (400, "/admin/clients")}
    watched.failed.clear()


def test_budgets_spend_bars_and_the_forecast_render_when_the_server_has_them(site, watched, tmp_path):
    """The budget fields and /analytics/forecast come from other parts of the proxy: the page's rendering of
    their documented shapes (shared with them), layered onto the real client list."""
    page = watched.page
    alpha, bravo = site.alpha["id"], site.bravo["id"]

    def with_budgets(route):
        answer = route.fetch()
        if answer.status != 200:  # before the admin key is typed in
            route.fulfill(response=answer)
            return
        listed = answer.json()
        for client in listed:
            client.update(budget_usd=10.0 if client["id"] == alpha else None, budget_period="month",
                          spent_usd=8.5 if client["id"] == alpha else 0.0)
        route.fulfill(json=listed)

    figure = lambda so_far, expected: {"tokens": {"so_far": 1000, "expected": 4000, "low": 3000, "high": 5000},  # noqa: E731
                                       "cost_usd": {"so_far": so_far, "expected": expected, "low": expected * 0.8,
                                                    "high": expected * 1.2}, "ends_at": "2026-12-31T23:59:59Z"}
    forecast = {"generated_at": "2026-12-03T12:00:00Z", "history_days": 14, "seasonality": "weekly",
                "total": {"day": figure(1.0, 3.0), "month": figure(9.0, 31.0)},
                "clients": [{"client_id": alpha, "name": "alpha", "day": figure(1.0, 2.0), "month": figure(8.5, 12.5),
                             "budget": {"usd": 10.0, "period": "month", "spent_usd": 8.5,
                                        "runs_out_at": "2026-12-20T10:00:00Z"}, "quota": None}]}
    page.route("**/admin/clients", with_budgets)
    page.route("**/analytics/forecast*", lambda route: route.fulfill(json=forecast))
    watched.sign_in(f"{site.url}/dashboard/clients")
    row = client_row(page, "alpha")
    assert "$10.00 / month" in row.text_content() and "$8.50 / $10.00 (85 %)" in row.text_content()
    assert row.locator(".spend .fill.warn").evaluate("e => e.style.width") == "85%"
    assert "$12.50 this month" in row.text_content() and "runs out 2026-12-20 10:00:00" in row.text_content()
    assert "no budget" in client_row(page, "bravo").text_content()
    assert "$31.00" in page.text_content("#forecast") and "weekly" in page.text_content("#forecast")
    page.screenshot(path=str(tmp_path / "clients.png"), full_page=True)  # for a person to look at
    assert watched.errors == []

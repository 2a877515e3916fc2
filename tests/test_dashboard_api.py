"""What the request log page asks of /analytics/requests: every filter, alone or together, against a
brute-force count of known rows; bad filter values are 400s, never 500s; the pages are served locked down."""
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models import ApiClient, RequestLog, db

T0 = datetime(2026, 5, 4, 9, 0, 0)
WINDOW = {"from": "2026-05-04T00:00:00Z", "to": "2026-05-05T00:00:00Z"}
ROUTES = ("/gemini/generate", "/v1beta/models/{model}:generateContent")
MODELS = ("gemini-2.5-flash", "gemini-2.5-flash-lite")
STATUSES = (200, 200, 400, 429, 502)


@pytest.fixture
def rows(admin_app):
    """40 requests over 40 × 17 minutes from T0, cycling through two clients, routes, models and statuses."""
    with admin_app.app_context():
        owners = [ApiClient(name=f"c{n}", key_hash=str(n) * 64, key_prefix=f"gp_{n}") for n in (1, 2)]
        db.session.add_all(owners)
        db.session.flush()
        made = []
        for n in range(40):
            status = STATUSES[n % len(STATUSES)]
            made.append(dict(request_id=f"r-{n:03d}", created_at=T0 + timedelta(minutes=17 * n), route=ROUTES[n % 2],
                             model_used=MODELS[n % 3 % 2], status_code=status, client_id=owners[n % 2].id,
                             error_code=None if status < 400 else ("UPSTREAM_ERROR" if status == 502 else "BAD")))
            db.session.add(RequestLog(method="POST", latency_ms=5.0, attempt_count=1, **made[-1]))
        db.session.commit()
        return made, [o.id for o in owners]


def matches(row, filters):
    stamp = lambda text: datetime.fromisoformat(text).astimezone(timezone.utc).replace(tzinfo=None)  # noqa: E731
    checks = {
        "client": lambda v: row["client_id"] == int(v), "model": lambda v: row["model_used"] == v,
        "route": lambda v: row["route"] == v, "status": lambda v: row["status_code"] == int(v),
        "error_code": lambda v: row["error_code"] == v,
        "outcome": lambda v: (row["status_code"] >= 400) == (v == "error"),
        "from": lambda v: row["created_at"] >= stamp(v), "to": lambda v: row["created_at"] < stamp(v),
    }
    return all(checks[name](value) for name, value in filters.items())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_filter_combination_counts_and_lists_exactly_the_matching_rows(admin_client, rows, data):
    made, owners = rows
    filters = {"from": WINDOW["from"], "to": WINDOW["to"]}
    for name, values in (("client", owners), ("model", MODELS), ("route", ROUTES), ("status", sorted(set(STATUSES))),
                         ("error_code", ("UPSTREAM_ERROR", "BAD")), ("outcome", ("ok", "error")),
                         ("from", ("2026-05-04T12:00:00Z",)), ("to", ("2026-05-04T15:30:00+02:00",))):
        if data.draw(st.booleans(), label=f"filter on {name}"):
            filters[name] = str(data.draw(st.sampled_from(values), label=name))
    expected = sorted((r["request_id"] for r in made if matches(r, filters)), reverse=True)
    answer = admin_client.get("/analytics/requests", query_string={**filters, "page_size": 200})
    assert answer.status_code == 200, answer.json
    body = answer.json
    assert body["total"] == len(expected) and [r["request_id"] for r in body["requests"]] == expected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["outcome", "error_code", "status", "client", "from", "to", "page"]),
       value=st.text(max_size=80))
def test_a_bad_filter_value_is_a_400_with_its_code_never_a_500(admin_client, name, value):
    answer = admin_client.get("/analytics/requests", query_string={name: value})
    assert answer.status_code in (200, 400), (name, value, answer.status_code)
    if answer.status_code == 400:
        assert answer.json["error"]["code"] == "INVALID_REQUEST"


@pytest.mark.parametrize("query", ["outcome=failed", "outcome=", "error_code=", "error_code=" + "A" * 65, "error_code=a%20b",
                                   "error_code=X%0A"])
def test_the_new_filters_refuse_what_no_row_could_match(admin_client, query):
    answer = admin_client.get(f"/analytics/requests?{query}")
    assert answer.status_code == 400 and answer.json["error"]["code"] == "INVALID_REQUEST", answer.json


def test_the_new_filters_are_documented(admin_client):
    spec = admin_client.get("/swagger.json").json
    parameters = {p["name"]: p for p in spec["paths"]["/analytics/requests"]["get"]["parameters"]}
    assert parameters["outcome"]["enum"] == ["ok", "error"]
    assert parameters["error_code"]["maxLength"] == 64


@pytest.mark.parametrize("path", ["/dashboard", "/dashboard/requests", "/dashboard/clients"])
def test_each_page_is_served_under_its_content_security_policy(admin_client, path):
    page = admin_client.get(path)
    assert page.status_code == 200 and b"vendor/chart.umd.min.js" in page.data
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["Referrer-Policy"] == "no-referrer"

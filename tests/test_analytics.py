"""Analytics reports checked against known inserted history: exact counts, sums and percentiles."""
import math
import os
import sqlite3
import threading
import time
from types import SimpleNamespace
from datetime import datetime, timedelta, timezone

import pytest
import requests

from models import ApiClient, Attempt, RequestLog, db
from proxy.analytics import synthetic
from tests import processes
from tests.conftest import ADMIN_KEY

T0 = datetime(2026, 3, 10, 12, 0, 0)  # a fixed, naive-UTC moment the history is laid around
WINDOW = {"from": "2026-03-10T00:00:00Z", "to": "2026-03-11T00:00:00Z"}


def nearest_rank(values, point):
    ordered = sorted(values)
    return ordered[max(1, math.ceil(point / 100 * len(ordered))) - 1]


@pytest.fixture
def history(admin_app):
    """60 requests in the window plus some outside it, with known latencies, tokens and failures."""
    with admin_app.app_context():
        client = ApiClient(name="team-a", key_hash="0" * 64, key_prefix="gp_x")
        db.session.add(client)
        db.session.flush()
        rows = []
        for n in range(60):
            model = "gemini-2.5-flash" if n % 3 else "gemini-2.5-flash-lite"
            failed = n % 10 == 0
            entry = RequestLog(
                request_id=f"req-{n:04d}", created_at=T0 + timedelta(minutes=n * 7), route="/gemini/generate",
                model_requested=None, model_used=model, status_code=502 if failed else 200,
                error_code="UPSTREAM_ERROR" if failed else None, latency_ms=float(10 + n * 3),
                upstream_latency_ms=float(8 + n * 3), attempt_count=2 if n % 6 == 0 else 1,
                prompt_tokens=None if failed else 100 + n, completion_tokens=None if failed else 10 * n,
                total_tokens=None if failed else 100 + n + 10 * n, client_id=client.id if n % 2 else None)
            entry.attempts = [Attempt(number=1, model="gemini-2.5-flash" if n % 6 == 0 else model, key_id="key-1",
                                      outcome="transient" if n % 6 == 0 else "ok", latency_ms=5.0,
                                      status_code=503 if n % 6 == 0 else 200)]
            if n % 6 == 0:
                entry.attempts.append(Attempt(number=2, model=model, key_id="key-1", outcome="ok", latency_ms=5.0,
                                              status_code=200))
            rows.append(entry)
        outside = RequestLog(request_id="old-one", created_at=T0 - timedelta(days=3), route="/gemini/generate",
                             model_used="gemini-2.5-pro", status_code=200, latency_ms=9999.0, prompt_tokens=1,
                             completion_tokens=1, total_tokens=2)
        db.session.add_all(rows + [outside])
        db.session.commit()
        fields = ("request_id", "created_at", "model_used", "status_code", "latency_ms", "upstream_latency_ms",
                  "attempt_count", "prompt_tokens", "completion_tokens", "total_tokens")
        snapshot = [SimpleNamespace(**{f: getattr(r, f) for f in fields}) for r in rows]
        return {"rows": snapshot, "client_id": client.id}


def test_summary_is_exact(admin_app, admin_client, history):
    body = admin_client.get("/analytics/summary", query_string=WINDOW).json
    rows = history["rows"]
    ok = [r for r in rows if r.status_code == 200]
    assert body["requests"] == 60 and body["errors"] == 6 and body["successes"] == 54
    assert body["error_rate"] == pytest.approx(0.1)
    assert body["prompt_tokens"] == sum(r.prompt_tokens for r in ok)
    assert body["completion_tokens"] == sum(r.completion_tokens for r in ok)
    assert body["total_tokens"] == sum(r.total_tokens for r in ok)
    latencies = [r.latency_ms for r in rows]
    assert body["latency_ms"]["avg"] == pytest.approx(sum(latencies) / 60)
    for point in (50, 95, 99):
        assert body["latency_ms"][f"p{point}"] == nearest_rank(latencies, point)
    expected_cost = sum((r.prompt_tokens * (0.30 if r.model_used == "gemini-2.5-flash" else 0.10)
                         + r.completion_tokens * (2.50 if r.model_used == "gemini-2.5-flash" else 0.40)) / 1e6
                        for r in ok)
    assert body["cost_usd"] == pytest.approx(expected_cost, abs=1e-6)


def test_filters_narrow_every_report(admin_client, history):
    body = admin_client.get("/analytics/summary", query_string={**WINDOW, "model": "gemini-2.5-flash-lite"}).json
    assert body["requests"] == 20
    assert admin_client.get("/analytics/summary", query_string={**WINDOW, "status": 502}).json["requests"] == 6
    assert admin_client.get("/analytics/summary",
                            query_string={**WINDOW, "client": history["client_id"]}).json["requests"] == 30


def test_empty_window(admin_client, history):
    body = admin_client.get("/analytics/summary", query_string={"from": "2020-01-01T00:00:00Z",
                                                                "to": "2020-01-02T00:00:00Z"}).json
    assert body["requests"] == 0 and body["error_rate"] == 0 and body["cost_usd"] == 0
    assert body["latency_ms"] == {"avg": None, "p50": None, "p95": None, "p99": None, "exact": True}
    series = admin_client.get("/analytics/usage", query_string={"from": "2020-01-01T00:00:00Z",
                                                                "to": "2020-01-01T05:00:00Z",
                                                                "group_by": "hour"}).json["groups"]
    assert [g["requests"] for g in series] == [0] * 5


def test_usage_by_model_route_client_and_time(admin_client, history):
    by_model = {g["key"]: g for g in admin_client.get("/analytics/usage", query_string={**WINDOW, "group_by": "model"})
                .json["groups"]}
    assert by_model["gemini-2.5-flash"]["requests"] == 40 and by_model["gemini-2.5-flash-lite"]["requests"] == 20
    by_route = admin_client.get("/analytics/usage", query_string={**WINDOW, "group_by": "route"}).json["groups"]
    assert by_route == [dict(by_route[0], key="/gemini/generate", requests=60)]
    by_client = {g["key"]: g["requests"] for g in
                 admin_client.get("/analytics/usage", query_string={**WINDOW, "group_by": "client"}).json["groups"]}
    assert by_client == {f"{history['client_id']}:team-a": 30, "(none)": 30}
    hours = admin_client.get("/analytics/usage", query_string={**WINDOW, "group_by": "hour"}).json["groups"]
    assert len(hours) == 24 and hours[0]["key"] == "2026-03-10T00:00:00Z" and hours[0]["requests"] == 0
    per_hour = {}
    for row in history["rows"]:
        per_hour[row.created_at.hour] = per_hour.get(row.created_at.hour, 0) + 1
    assert [h["requests"] for h in hours] == [per_hour.get(hour, 0) for hour in range(24)]
    days = admin_client.get("/analytics/usage", query_string={**WINDOW, "group_by": "day"}).json["groups"]
    assert [(d["key"], d["requests"]) for d in days] == [("2026-03-10T00:00:00Z", 60)]


def test_performance_series(admin_client, history):
    series = admin_client.get("/analytics/performance", query_string={**WINDOW, "bucket": "hour"}).json["series"]
    noon = next(s for s in series if s["bucket"] == "2026-03-10T12:00:00Z")
    in_hour = [r for r in history["rows"] if r.created_at.hour == 12]
    assert noon["requests"] == len(in_hour)
    assert noon["latency_ms"]["p50"] == nearest_rank([r.latency_ms for r in in_hour], 50)
    assert noon["upstream_ms_avg"] == pytest.approx(sum(r.upstream_latency_ms for r in in_hour) / len(in_hour))
    assert noon["overhead_ms_avg"] == pytest.approx(2.0)


def test_errors_report(admin_client, history):
    body = admin_client.get("/analytics/errors", query_string=WINDOW).json
    assert body["by_code"] == [{"code": "UPSTREAM_ERROR", "status": 502, "count": 6}]
    assert body["by_upstream_status"] == [{"status": 503, "count": 10}]
    assert [e["request_id"] for e in body["latest"]][:2] == ["req-0050", "req-0040"]


def test_fallbacks_report(admin_client, history):
    body = admin_client.get("/analytics/fallbacks", query_string=WINDOW).json
    # Every sixth request tried flash first; when it then answered with flash-lite, that is a fallback.
    moved = [r for r in history["rows"] if r.attempt_count == 2 and r.model_used != "gemini-2.5-flash"]
    assert body["first_model_failed"] == len(moved)
    assert body["fallbacks"] == [{"from": "gemini-2.5-flash", "to": "gemini-2.5-flash-lite", "count": len(moved)}]
    assert body["retried_requests"] == 10 and body["retries"] == 10
    assert body["attempts_by_outcome"] == {"ok": 60, "transient": 10}


def test_costs_and_savings(admin_client, history):
    body = admin_client.get("/analytics/costs", query_string=WINDOW).json
    flash = next(m for m in body["by_model"] if m["model"] == "gemini-2.5-flash")
    assert flash["price_per_million"] == {"input": 0.30, "output": 2.50, "cached": 0.03}
    assert body["cheapest_fallback_model"] == "gemini-2.5-flash-lite"
    at_lite = (flash["prompt_tokens"] * 0.10 + flash["completion_tokens"] * 0.40) / 1e6
    assert body["savings_if_cheapest_usd"] == pytest.approx(flash["cost_usd"] - at_lite, abs=1e-6)
    assert body["by_day"] == [{"day": "2026-03-10T00:00:00Z", "cost_usd": body["total_cost_usd"]}]


def test_operator_prices_override_the_table(admin_app, admin_client, history):
    admin_app.config["MODEL_PRICES"] = {"gemini-2.5-flash": (1.0, 1.0)}
    flash = next(m for m in admin_client.get("/analytics/costs", query_string=WINDOW).json["by_model"]
                 if m["model"] == "gemini-2.5-flash")
    assert flash["cost_usd"] == pytest.approx((flash["prompt_tokens"] + flash["completion_tokens"]) / 1e6)


def test_anomalies_flag_a_spike_against_its_baseline(admin_app, admin_client):
    with admin_app.app_context():
        start = datetime(2026, 4, 1, 0, 0)
        rows = []
        for hour in range(30):
            count = 60 if hour == 28 else 5
            for n in range(count):
                rows.append(RequestLog(request_id=f"a-{hour}-{n}", created_at=start + timedelta(hours=hour, minutes=n % 60),
                                       route="/gemini/generate", status_code=200, latency_ms=100.0, total_tokens=50))
        db.session.add_all(rows)
        db.session.commit()
    body = admin_client.get("/analytics/anomalies", query_string={"from": "2026-04-02T00:00:00Z",
                                                                  "to": "2026-04-02T06:00:00Z"}).json
    assert [a["hour"] for a in body["anomalies"]] == ["2026-04-02T04:00:00Z"]
    metrics = {r["metric"] for r in body["anomalies"][0]["reasons"]}
    assert {"requests", "total_tokens"} <= metrics


def test_request_log_paging_and_detail(admin_client, history):
    first = admin_client.get("/analytics/requests", query_string={**WINDOW, "page_size": 25}).json
    assert first["total"] == 60 and len(first["requests"]) == 25 and first["requests"][0]["request_id"] == "req-0059"
    third = admin_client.get("/analytics/requests", query_string={**WINDOW, "page_size": 25, "page": 3}).json
    assert len(third["requests"]) == 10
    failed = admin_client.get("/analytics/requests", query_string={**WINDOW, "error_code": "UPSTREAM_ERROR"}).json
    assert failed["total"] == 6
    detail = admin_client.get("/analytics/requests/req-0006").json
    assert [a["outcome"] for a in detail["attempts"]] == ["transient", "ok"]
    assert admin_client.get("/analytics/requests/nope").status_code == 404


@pytest.mark.parametrize("params", [
    {"from": "yesterday"}, {"to": "2026-13-01"}, {"from": "2026-03-11T00:00:00Z", "to": "2026-03-10T00:00:00Z"},
    {"from": "2020-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, {"status": "abc"}, {"client": "-1"},
])
def test_bad_parameters_get_400(admin_client, params):
    response = admin_client.get("/analytics/summary", query_string=params)
    assert response.status_code == 400 and response.json["error"]["code"] == "INVALID_REQUEST"


@pytest.mark.parametrize("path,params", [("usage", {"group_by": "planet"}), ("performance", {"bucket": "week"}),
                                         ("requests", {"page": "0"}), ("requests", {"page_size": "1000"})])
def test_bad_report_options_get_400(admin_client, path, params):
    assert admin_client.get(f"/analytics/{path}", query_string=params).status_code == 400


def test_analytics_needs_the_admin_key_when_keys_are_on(admin_app, history):
    from proxy.access import clients

    with admin_app.app_context():
        _, secret = clients.create("user")
    plain = admin_app.test_client()
    assert plain.get("/analytics/summary").status_code == 401
    assert plain.get("/analytics/summary", headers={"X-API-KEY": secret}).status_code == 401
    assert plain.get("/analytics/summary", headers={"X-API-KEY": ADMIN_KEY}).status_code == 200


def test_seed_command_fills_realistic_history(admin_app, admin_client):
    result = admin_app.test_cli_runner().invoke(args=["ops", "seed", "--rows", "3000", "--days", "2"])
    assert result.exit_code == 0 and "Inserted 3,000 requests" in result.output
    three_days = {"from": (datetime.now(timezone.utc) - timedelta(days=3)).isoformat()}
    body = admin_client.get("/analytics/summary", query_string=three_days).json
    assert body["requests"] == 3000 and 0 < body["errors"] < 150 and body["cost_usd"] > 0
    models = {g["key"] for g in admin_client.get("/analytics/usage",
                                                   query_string={**three_days, "group_by": "model"}).json["groups"]}
    assert models == {"gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-2.5-pro"}
    assert admin_client.get("/analytics/fallbacks", query_string=three_days).json["retries"] > 0


@pytest.mark.e2e
def test_a_long_report_lets_the_workers_other_requests_through(make_app, gunicorn):
    seeded = make_app()  # the database the server below uses
    with seeded.app_context():
        synthetic.seed(80_000, days=30)  # no rollups: a 30-day report reads every row, for some 400 ms
    server = gunicorn(WEB_CONCURRENCY=1, ROLLUP_INTERVAL_SECONDS="0", ADMIN_API_KEY=ADMIN_KEY)
    since = (datetime.now(timezone.utc) - timedelta(days=30)).replace(tzinfo=None).isoformat() + "Z"
    report = {}

    def fetch():
        report["answer"] = requests.get(f"{server.url}/analytics/summary?from={since}",
                                        headers={"X-API-Key": ADMIN_KEY}, timeout=60)
        report["done"] = time.monotonic()

    fetch()  # warm: the first report also loads the statistics SQLite plans with
    (worker,) = processes.workers_of(server.proc.pid)
    idle = cpu_seconds(worker)
    reader = threading.Thread(target=fetch)
    reader.start()
    # The report is under way once the worker, with nothing else to do, has spent CPU time on it: a
    # request answered after that and before the report's end ran beside it, not before it.
    deadline = time.monotonic() + 10
    while cpu_seconds(worker) - idle < 0.05:
        assert reader.is_alive() and time.monotonic() < deadline, "the report never got under way"
        time.sleep(0.005)
    answered = []
    while reader.is_alive() and len(answered) < 500:
        assert requests.post(f"{server.url}/gemini/generate", json={"prompt": {"text": "hi"}},
                             timeout=30).status_code == 200
        answered.append(time.monotonic())
    reader.join()
    assert report["answer"].status_code == 200 and report["answer"].json()["requests"] > 79_000
    # SQLite's work ran on the worker's loop: no request moved until the report was done.
    assert sum(moment < report["done"] for moment in answered) >= 3, (len(answered), answered[:3], report["done"])


def cpu_seconds(pid):
    """The CPU time a process has spent, from /proc (utime and stime, in clock ticks)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_long_read_run_by_the_gevent_loop_itself_is_not_interrupted():
    import gevent

    from proxy.storage.sqlite_turns import PROGRESS_STEPS, let_requests_in

    connection = sqlite3.connect(":memory:")
    connection.set_progress_handler(let_requests_in(connection), PROGRESS_STEPS)
    count = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 300000) SELECT count(*) FROM n"
    beside = []
    ticker = gevent.spawn(lambda: [beside.append(gevent.sleep(0.001)) for _ in range(10_000)])
    assert gevent.spawn(lambda: connection.execute(count).fetchone()[0]).get() == 300_000
    assert beside  # the greenlet beside it ran while the read did
    # The loop's own greenlet may not switch out: asked to, the read would be interrupted.
    results = []
    gevent.get_hub().loop.run_callback(lambda: results.append(connection.execute(count).fetchone()[0]))
    gevent.sleep(0.5)
    ticker.kill()
    assert results == [300_000]

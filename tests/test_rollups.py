"""Hourly rollups: reports read through them agree with reports over every row, and stay right when
late records arrive, when retention prunes, and when two builders race."""
import fcntl
import os
import signal
import sqlite3
import threading
from datetime import datetime, timedelta, timezone

import pytest
import requests
from sqlalchemy import event, func, select

from models import HourlyRollup, RequestLog, RolledHour, db
from proxy.analytics import rollups, synthetic
from proxy.analytics.facts import hour_text
from proxy.analytics.operations import prune
from tests import processes
from tests.conftest import rows, wait_for

END = datetime(2026, 6, 1, 12, 30, 0)
WINDOW = {"from": "2026-05-30T09:15:00Z", "to": "2026-06-01T12:30:00Z"}  # partial hours at both ends
REPORTS = ["summary", "usage?group_by=model", "usage?group_by=route", "usage?group_by=hour", "usage?group_by=day",
           "performance", "performance?bucket=day", "errors", "fallbacks", "costs", "anomalies", "requests",
           "summary?model=gemini-2.5-flash", "summary?status=502", "performance?route=/gemini/generate",
           "summary?model=gemini-2.5-pro&route=/gemini/generate"]
PERCENTILE_KEYS = {"p50", "p95", "p99"}


@pytest.fixture
def seeded_app(admin_app):
    """admin_app (admin_client is its client) over three days of synthetic history ending at END."""
    with admin_app.app_context():
        synthetic.seed(4000, days=3, end=END)
    return admin_app


def report(client, path):
    name, _, query = path.partition("?")
    params = dict(pair.split("=", 1) for pair in query.split("&") if pair)
    response = client.get(f"/analytics/{name}", query_string={**WINDOW, **params})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json


def assert_agrees(raw, rolled, path=""):
    """Counts, sums and costs equal; percentiles within the histograms' 2.2%; `exact` may differ."""
    if isinstance(raw, dict):
        assert raw.keys() == rolled.keys(), path
        for key in raw:
            if key == "exact":
                continue
            if key in PERCENTILE_KEYS and raw[key] is not None:
                assert rolled[key] == pytest.approx(raw[key], rel=0.022), f"{path}.{key}"
            else:
                assert_agrees(raw[key], rolled[key], f"{path}.{key}")
    elif isinstance(raw, list):
        assert len(raw) == len(rolled), path
        for n, (a, b) in enumerate(zip(raw, rolled)):
            assert_agrees(a, b, f"{path}[{n}]")
    elif isinstance(raw, float):
        assert rolled == pytest.approx(raw, rel=1e-9, abs=1e-6), path
    else:
        assert rolled == raw, path


def roll_up(app, now=END + timedelta(hours=2)):
    with app.app_context():
        return rollups.roll_up(now=now)


def test_every_report_agrees_with_the_raw_rows(seeded_app, admin_client):
    raw = {path: report(admin_client, path) for path in REPORTS}
    assert raw["summary"]["latency_ms"]["exact"] is True and raw["summary"]["requests"] > 1000

    built = roll_up(seeded_app)
    assert built >= 72  # three days of settled hours
    rolled = {path: report(admin_client, path) for path in REPORTS}

    for path in REPORTS:
        assert_agrees(raw[path], rolled[path], path)
    assert rolled["summary"]["latency_ms"]["exact"] is False
    assert rolled["performance"]["exact"] is False
    # Two filters have no histogram of their own: that report reads every row, and says so.
    assert rolled["summary?model=gemini-2.5-pro&route=/gemini/generate"]["latency_ms"]["exact"] is True
    with seeded_app.app_context():
        assert db.session.execute(select(func.sum(HourlyRollup.requests))).scalar() == 4000


def test_writers_go_on_while_an_hour_is_aggregated_and_a_record_landing_meanwhile_is_not_missed(seeded_app):
    url = seeded_app.config["SQLALCHEMY_DATABASE_URI"]
    (earliest,), = rows(url, "SELECT min(created_at) FROM request_log")
    late_at = earliest[:14] + "07:00.000000"  # in the first hour the first run builds
    landed = []

    def another_writer(_connection, _cursor, statement, *_):
        # The last read before the write: the histograms' rows.
        if landed or "GROUP BY" in statement or "request_log.ttfb_ms" not in statement:
            return
        writer = sqlite3.connect(url.split("///", 1)[1], timeout=0)  # no waiting: the lock must be free
        try:
            writer.execute("BEGIN IMMEDIATE")
            writer.execute("INSERT INTO request_log (request_id, created_at, route, method, status_code, latency_ms, "
                           "attempt_count, streamed) VALUES ('late', ?, '/gemini/generate', 'POST', 200, 5.0, 1, 0)",
                           (late_at,))
            writer.commit()
        finally:
            writer.close()
        landed.append(late_at)

    with seeded_app.app_context():
        event.listen(db.engine, "after_cursor_execute", another_writer)
    first = roll_up(seeded_app)
    assert landed
    with seeded_app.app_context():
        assert db.session.get(RolledHour, late_at[:13] + ":00:00") is None  # its run is left for the next
    second = roll_up(seeded_app)
    assert second > 0 and first + second >= 72
    with seeded_app.app_context():
        assert db.session.execute(select(func.sum(HourlyRollup.requests))).scalar() == 4001


def test_a_second_run_builds_nothing_and_the_hour_still_open_is_left_alone(seeded_app):
    assert roll_up(seeded_app) > 0
    assert roll_up(seeded_app) == 0
    with seeded_app.app_context():
        newest = db.session.execute(select(func.max(RolledHour.hour))).scalar()
    # END + 2 h minus the settling time: 14:00 - 0:30 floors to 14:00, so the last hour built is 13:00.
    assert newest == "2026-06-01 13:00:00"


def test_a_late_record_sends_its_hour_back_to_raw_rows_until_rebuilt(seeded_app, admin_client):
    roll_up(seeded_app)
    before = report(admin_client, "summary")["requests"]
    late = datetime(2026, 5, 31, 3, 20)
    with seeded_app.app_context():
        db.session.add(RequestLog(request_id="late-one", created_at=late, route="/gemini/generate",
                                  model_used="gemini-2.5-flash", status_code=200, latency_ms=5.0,
                                  prompt_tokens=7, completion_tokens=3, total_tokens=10))
        db.session.commit()
        assert db.session.get(RolledHour, hour_text(late.replace(minute=0))) is None
    assert report(admin_client, "summary")["requests"] == before + 1
    assert roll_up(seeded_app) == 1
    assert report(admin_client, "summary")["requests"] == before + 1


def test_prune_takes_the_rollups_of_the_hours_it_deletes(seeded_app, admin_client):
    roll_up(seeded_app)
    with seeded_app.app_context():
        prune(days=1, body_days=0, now=END)
        kept = db.session.execute(select(func.count()).select_from(RequestLog)).scalar()
    assert report(admin_client, "summary")["requests"] == kept
    roll_up(seeded_app)
    assert report(admin_client, "summary")["requests"] == kept


def test_two_builders_at_once_build_each_hour_once(seeded_app):
    results, errors = [], []

    def run():
        try:
            results.append(roll_up(seeded_app))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    with seeded_app.app_context():
        hours = db.session.execute(select(func.count()).select_from(RolledHour)).scalar()
        total = db.session.execute(select(func.sum(HourlyRollup.requests))).scalar()
    assert sum(results) == hours and total == 4000


def test_the_background_builder_catches_up_and_stops(seeded_app):
    stop = threading.Event()
    thread = rollups.start_periodic_rollups(seeded_app, 0.05, stop=stop)
    try:
        for _ in range(200):
            with seeded_app.app_context():
                if db.session.execute(select(func.count()).select_from(RolledHour)).scalar() >= 72:
                    break
            threading.Event().wait(0.05)
        else:
            pytest.fail("the background builder did not roll up the settled hours")
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()


@pytest.fixture
def busy_day(make_app):
    """The URL of the database the gunicorn fixture's servers use, holding a busy settled day: 60,000
    requests, some 2,500 an hour, not rolled up."""
    seeded = make_app()
    settled = datetime.now(timezone.utc).replace(tzinfo=None, minute=0, second=0, microsecond=0) - timedelta(hours=2)
    with seeded.app_context():
        synthetic.seed(60_000, days=1, end=settled)
    return seeded.config["SQLALCHEMY_DATABASE_URI"]


@pytest.mark.e2e
def test_a_worker_answers_requests_while_a_busy_hour_is_rolled_up(busy_day, gunicorn):
    url = busy_day
    server = gunicorn(ROLLUP_INTERVAL_SECONDS="1", WEB_CONCURRENCY=1)

    probes = []  # (request id, whether any rollup could be read once it was answered)
    for _ in range(5000):
        answer = requests.post(f"{server.url}/gemini/generate", json={"prompt": {"text": "hi"}}, timeout=30)
        assert answer.status_code == 200
        probes.append((answer.headers["X-Request-ID"], bool(rows(url, "SELECT count(*) FROM rolled_hours")[0][0])))
        if probes[-1][1]:
            break
    assert probes[-1][1], "the rollup never finished"
    wait_for(lambda: rows(url, "SELECT count(*) FROM request_log WHERE route = '/gemini/generate' AND "
                               f"request_id IN ({', '.join(repr(p) for p, _ in probes)})")[0][0] == len(probes),
             message="every probe recorded")

    # The rollup's one transaction began at built_at and ended when its hours could be read. A request
    # that began after it and was answered before the end ran beside it: in the worker itself, the
    # rollup held up every request until it was done.
    (began,), = rows(url, "SELECT min(built_at) FROM rolled_hours")
    started = dict(rows(url, "SELECT request_id, created_at FROM request_log WHERE request_id IN "
                             f"({', '.join(repr(p) for p, _ in probes)})"))
    beside = [p for p, rolled in probes if not rolled and started[p] > began]
    assert beside, f"no request ran while the rollup did ({len(probes)} probes)"
    wait_for(lambda: rows(url, "SELECT sum(requests) FROM hourly_rollups")[0][0] == 60_000,
             message="every seeded request in the rollups")
    # The process logs once it has committed.
    wait_for(lambda: "proxy.maintenance: rollup: rolled up" in server.output(), message="the rollup's log line")
    assert "Traceback" not in server.output()


def finished(pid):
    """The process has exited (an orphan's zombie counts: this sandbox's init may not reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.e2e
def test_a_worker_killed_during_a_rollup_leaves_the_lock_with_the_rollup_process(busy_day, gunicorn):
    url = busy_day
    server = gunicorn(ROLLUP_INTERVAL_SECONDS="1", WEB_CONCURRENCY=1)
    (worker,) = processes.workers_of(server.proc.pid)
    wait_for(lambda: processes.workers_of(worker), message="the rollup process")
    (job,) = processes.workers_of(worker)
    os.kill(worker, signal.SIGKILL)  # Gunicorn starts another worker, which would start a rollup too
    wait_for(lambda: finished(worker), message="the worker gone, its files closed")

    lock_path = url.split("///", 1)[1] + ".maintenance.lock"
    with open(lock_path, "ab") as lock:
        # While the orphaned rollup runs, the lock is its: no second rollup process starts on this host.
        with pytest.raises(BlockingIOError):
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        wait_for(lambda: finished(job), message="the rollup process to finish")
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert rows(url, "SELECT sum(requests) FROM hourly_rollups")[0][0] == 60_000

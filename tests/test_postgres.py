"""A networked database (PostgreSQL, Debian's package): records and reports work on it, and a server
that goes down loses no record. Proved by counting, with Gunicorn gevent workers in front."""
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest
import requests

from proxy.analytics import rollups, synthetic
from tests.conftest import ADMIN_KEY, KEYS, as_admin, generate_over_http, native_over_http, rows, wait_for


def send(server, count, start=0):
    """`count` requests, alternating between /gemini/generate and the pass-through."""
    def one(n):
        return native_over_http(server, f"n{n}") if n % 2 else generate_over_http(server, f"g{n}")

    with ThreadPoolExecutor(max_workers=10) as pool:
        return list(pool.map(one, range(start, start + count)))


def count(url, table):
    return rows(url, f"SELECT count(*) FROM {table}")[0][0]


@pytest.mark.e2e
def test_records_and_reports_on_postgresql(gunicorn, postgres, tmp_path):
    # Four workers starting at once on an empty database, with the URL as an operator writes it.
    server = gunicorn(DATABASE_URL=postgres.url.replace("+psycopg", ""), WEB_CONCURRENCY=4,
                      SPOOL_DIR=str(tmp_path / "spool"))
    answered = send(server, 40)
    assert [r.status_code for r in answered] == [200] * 40
    wait_for(lambda: count(postgres.url, "request_log") == 40, message="40 rows")
    assert rows(postgres.url, "SELECT count(DISTINCT request_id) FROM request_log") == [(40,)]
    assert count(postgres.url, "exchanges") == 20 and count(postgres.url, "exchange_bodies") == 20
    assert count(postgres.url, "metrics") == 40 and count(postgres.url, "attempts") == 40
    ((linked,),) = rows(postgres.url, "SELECT count(*) FROM request_log l JOIN metrics m ON m.id = l.metric_id")
    assert linked == 40  # every row points at its own metric, ids handed back in order
    summary = requests.get(f"{server.url}/analytics/summary", timeout=30).json()
    assert summary["requests"] == 40 and summary["successes"] == 40 and summary["total_tokens"] > 0
    # A model name longer than its column comes from the client's URL: the record keeps what fits.
    long_model = "m" * 120  # a name the path parser takes (up to 128), longer than the column
    unknown = requests.post(f"{server.url}/v1beta/models/{long_model}:generateContent",
                            json={"contents": [{"parts": [{"text": "x"}]}]}, headers={"x-goog-api-key": KEYS[0]},
                            timeout=30)
    assert unknown.status_code == 404
    wait_for(lambda: count(postgres.url, "request_log") == 41, message="the long model's row")
    assert rows(postgres.url, "SELECT model_requested FROM request_log WHERE status_code = 404") == [("m" * 100,)]
    output = server.output()
    assert "Traceback" not in output, output[-4000:]


@pytest.mark.e2e
def test_a_database_server_that_goes_down_loses_nothing(gunicorn, postgres, tmp_path):
    server = gunicorn(DATABASE_URL=postgres.url, SPOOL_REPLAY_SECONDS="0.3", SPOOL_DIR=str(tmp_path / "spool"))
    assert [r.status_code for r in send(server, 6)] == [200] * 6
    wait_for(lambda: count(postgres.url, "request_log") == 6, message="6 rows")

    postgres.stop()
    down = send(server, 20, start=6)
    assert [r.status_code for r in down] == [200] * 20  # the proxy serves on without its database
    health = requests.get(f"{server.url}/health", timeout=10).json()
    assert health["database"] == {"reachable": False} and health["status"] == "degraded"
    wait_for(lambda: requests.get(f"{server.url}/health", timeout=10).json()["spool"]["depth"] == 20,
             message="20 records waiting in the spool")
    time.sleep(1)  # several replays fail meanwhile: none may lose or half-write a record

    postgres.start()
    wait_for(lambda: requests.get(f"{server.url}/health", timeout=10).json()["spool"]["depth"] == 0,
             message="the spool to drain")
    ids = {r.headers["X-Request-ID"] for r in down}
    logged = [r for (r,) in rows(postgres.url, "SELECT request_id FROM request_log")]
    assert len(logged) == 26 and len(set(logged)) == 26 and ids <= set(logged)
    assert count(postgres.url, "metrics") == 26 and count(postgres.url, "exchanges") == 13
    assert requests.get(f"{server.url}/health", timeout=10).json()["status"] == "ok"
    assert "FAILED TO RECORD" not in server.output()


@pytest.mark.e2e
def test_rollups_on_postgresql_agree_with_the_raw_rows(make_app, postgres):
    app = make_app(SQLALCHEMY_DATABASE_URI=postgres.url, ADMIN_API_KEY=ADMIN_KEY)
    end = datetime(2026, 6, 1, 12, 30)
    with app.app_context():
        synthetic.seed(3000, days=2, end=end)
    client = as_admin(app.test_client())
    window = "from=2026-05-30T12:00:00Z&to=2026-06-01T12:00:00Z"
    raw = client.get(f"/analytics/summary?{window}").json
    with app.app_context():
        built = rollups.roll_up(now=end + timedelta(hours=2))
    assert built >= 48
    rolled = client.get(f"/analytics/summary?{window}").json
    assert rolled["latency_ms"]["exact"] is False  # read from the rollups
    for measure in ("requests", "successes", "total_tokens", "prompt_tokens", "completion_tokens"):
        assert rolled[measure] == raw[measure], measure
    assert count(postgres.url, "rolled_hours") == built
    assert rows(postgres.url, "SELECT sum(requests) FROM hourly_rollups") == [(3000,)]

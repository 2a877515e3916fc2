"""Budget alerts: one per budget, period and threshold whoever crosses it (marked in the shared store), as a
log line and a webhook POST to a real receiver on loopback (retried, with a timeout, never with a key);
and the Prometheus gauges of spend against budget."""
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from proxy.access import budgets, clients
from proxy.access.budget_alerts import BudgetAlerts, LocalMarks, Webhook
from tests.conftest import MODELS, samples, value
from tests.test_access import ADMIN_KEY, call

PRICES = {MODELS[0]: (1_000_000.0, 1_000_000.0), MODELS[1]: (1_000_000.0, 1_000_000.0)}


class Receiver:
    """An HTTP server on loopback that answers the statuses it is given (then 200s) and keeps each body."""

    def __init__(self, statuses=()):
        self.bodies, self.headers, self.statuses = [], [], list(statuses)
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                receiver.headers.append(dict(self.headers))
                receiver.bodies.append((status, json.loads(body)))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                receiver.arrived.set()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def delivered(self):
        return [body for status, body in self.bodies if status == 200]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(statuses=()):
        made.append(Receiver(statuses))
        return made[-1]

    yield make
    for each in made:
        each.close()


def test_each_threshold_alerts_once_per_period_across_workers(tmp_path, caplog):
    marks = LocalMarks(str(tmp_path / "alerts"))
    worker_a, worker_b = BudgetAlerts([0.8, 1.0], marks), BudgetAlerts([0.8, 1.0], marks)  # one file, two workers
    with caplog.at_level(logging.WARNING, "proxy.access.budget_alerts"):
        worker_a.check(3, "month", "2026-12-01", 7.0, 10.0)  # 70%: nothing
        worker_a.check(3, "month", "2026-12-01", 8.5, 10.0)  # past 80%
        worker_b.check(3, "month", "2026-12-01", 9.0, 10.0)  # the other worker: already sent
        worker_b.check(3, "month", "2026-12-01", 12.0, 10.0)  # past 100%
        worker_a.check(3, "month", "2026-12-01", 13.0, 10.0)
        worker_a.check(3, "month", "2027-01-01", 9.0, 10.0)  # a new period alerts again
        worker_a.check(0, "month", "2026-12-01", 9.0, 10.0)  # the operator's is its own
    lines = [r.getMessage() for r in caplog.records if "budget alert" in r.getMessage()]
    assert len(lines) == 4
    assert "client 3" in lines[0] and "past 80%" in lines[0] and "past 100%" in lines[1]
    assert "2027-01-01" in lines[2] and "operator" in lines[3]


def test_the_webhook_posts_json_and_retries_until_the_receiver_takes_it(receiver):
    target = receiver(statuses=[503, 500])
    sleeps = []
    webhook = Webhook(target.url, timeout=5, attempts=3, sleep=sleeps.append)
    assert webhook.deliver({"kind": "budget_threshold", "message": "m"})
    assert [status for status, _ in target.bodies] == [503, 500, 200]
    assert sleeps == [0.5, 1.0]  # backoff between attempts, passed in so the test never sleeps
    assert target.headers[0]["Content-Type"] == "application/json"


def test_the_webhook_gives_up_after_its_attempts_and_on_a_4xx(receiver, caplog):
    target = receiver(statuses=[503, 503, 503, 400])
    webhook = Webhook(target.url, timeout=5, attempts=3, sleep=lambda s: None)
    with caplog.at_level(logging.WARNING):
        assert not webhook.deliver({"message": "first"})
        assert not webhook.deliver({"message": "second"})  # 400: the receiver will not take it, not retried
    assert len(target.bodies) == 4
    assert "after 3 attempt(s) (HTTP 503)" in caplog.text and "after 1 attempt(s) (HTTP 400)" in caplog.text


def test_the_webhook_times_out_on_a_receiver_that_never_answers():
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts the connection, never answers
    try:
        webhook = Webhook(f"http://127.0.0.1:{silent.getsockname()[1]}/", timeout=0.2, attempts=2,
                          sleep=lambda s: None)
        assert not webhook.deliver({"message": "m"})
    finally:
        silent.close()


def test_a_request_passing_a_threshold_sends_its_alert_off_the_request_path(make_app, receiver, caplog):
    target = receiver()
    app = make_app(MODEL_PRICES=PRICES, ALERT_WEBHOOK_URL=target.url)
    with app.app_context():
        created, secret = clients.create("alerted", budget_usd=30.0, budget_period="day")
        client_id = created.id
    client = app.test_client()
    with caplog.at_level(logging.WARNING, "proxy.access.budget_alerts"):
        while call(client, "generate", secret).status_code == 200:
            pass
    assert target.arrived.wait(10)
    for _ in range(100):
        if len(target.delivered()) >= 2:
            break
        target.arrived.clear()
        target.arrived.wait(0.1)
    alerts = target.delivered()
    assert [a["threshold"] for a in alerts] == [0.8, 1.0]
    assert all(a["client_id"] == client_id and a["period"] == "day" and a["budget_usd"] == 30.0 for a in alerts)
    assert secret not in json.dumps(alerts) and secret not in caplog.text
    assert sum("budget alert" in r.getMessage() for r in caplog.records) == 2


def test_the_gauges_show_spend_against_every_budget(make_app):
    app = make_app(MODEL_PRICES=PRICES, OPERATOR_BUDGET_USD=1000.0, ADMIN_API_KEY=ADMIN_KEY)
    with app.app_context():
        created, secret = clients.create("gauged", budget_usd=500.0, budget_period="month")
        client_id = created.id
    client = app.test_client()
    assert call(client, "generate", secret).status_code == 200
    scraped = samples(client.get("/metrics", headers={"X-API-KEY": ADMIN_KEY}).get_data(as_text=True))
    spent = app.extensions["budgets"].spent(client_id, "month", budgets.utcnow()) / budgets.MICRO
    assert value(scraped, "gemini_proxy_budget_spent_usd", scope=f"client:{client_id}", period="month") == spent > 0
    assert value(scraped, "gemini_proxy_budget_usd", scope="operator", period="month") == 1000.0
    assert value(scraped, "gemini_proxy_budget_spent_ratio", scope=f"client:{client_id}",
                 period="month") == pytest.approx(spent / 500.0)

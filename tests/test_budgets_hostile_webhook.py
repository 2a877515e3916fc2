"""ALERT_WEBHOOK_URL pointed somewhere hostile or broken: a redirect is not a delivery (nor followed, as a GET
without the alert), a 500 is retried then given up, and a hanging receiver never holds up a request."""
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from proxy.access.budget_alerts import Webhook

ALERT = {"kind": "budget_threshold", "message": "budget alert: client 1 has spent 8 USD of 10"}


class Server:
    """Loopback HTTP: POST answers `status` (with a Location when it is a redirect); every request is kept."""

    def __init__(self, status=200, location=None, hang=0.0):
        self.seen = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                server.seen.append((self.command, self.path, self.rfile.read(length)))
                time.sleep(hang)
                self.send_response(status if self.command == "POST" else 200)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_GET = _answer

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    made = []

    def make(**kwargs):
        made.append(Server(**kwargs))
        return made[-1]

    yield make
    for each in made:
        each.close()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_not_a_delivery_and_is_not_followed(server, status, caplog):
    elsewhere = server()
    hook = server(status=status, location=elsewhere.url)
    sleeps = []
    assert Webhook(hook.url, timeout=5, attempts=3, sleep=sleeps.append).deliver(ALERT) is False
    assert elsewhere.seen == []  # neither the alert nor a GET went where the redirect pointed
    assert len(hook.seen) == 1 and sleeps == []  # a redirect will not change on retry
    assert "redirect" in caplog.text


def test_a_500_is_retried_then_given_up(server):
    hook = server(status=500)
    sleeps = []
    assert Webhook(hook.url, timeout=5, attempts=3, sleep=sleeps.append).deliver(ALERT) is False
    assert len(hook.seen) == 3 and len(sleeps) == 2


def test_a_hanging_receiver_never_holds_up_the_sender(server):
    hook = server(hang=3.0)
    webhook = Webhook(hook.url, timeout=0.5, attempts=1)
    started = time.monotonic()
    for _ in range(5):
        webhook.send(ALERT)
    assert time.monotonic() - started < 0.5  # queued for the webhook's own thread


def test_alerts_sent_as_the_thread_goes_idle_are_all_delivered(server):
    """The sending thread ends when idle and the next alert starts another: none is stranded between."""
    hook = server()
    webhook = Webhook(hook.url, timeout=5, attempts=1, idle_seconds=0.01)
    for n in range(30):
        webhook.send({**ALERT, "n": n})
        time.sleep(0.005 * (n % 4))  # around the idle time, so sends meet the thread as it ends
    deadline = time.monotonic() + 20
    while len(hook.seen) < 30 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(hook.seen) == 30


def test_a_daily_and_a_monthly_period_from_the_same_day_alert_apart(tmp_path, caplog):
    """On the 1st, a day's period and the month's begin the same day: a key moved from a daily budget to a
    monthly one still hears of its month."""
    import logging

    from proxy.access.budget_alerts import BudgetAlerts, LocalMarks

    alerts = BudgetAlerts([0.8], LocalMarks(str(tmp_path / "alerts")))
    with caplog.at_level(logging.WARNING, "proxy.access.budget_alerts"):
        alerts.check(3, "day", "2026-12-01", 9.0, 10.0)
        alerts.check(3, "month", "2026-12-01", 90.0, 100.0)
    assert len([r for r in caplog.records if "budget alert" in r.getMessage()]) == 2


def test_the_webhook_url_is_kept_as_given_and_never_echoed():
    """A webhook URL is often a secret (Slack's carries its token in the path): a bad one is named, not
    printed; a good one is used as given, its trailing slash kept (dropping it can earn a redirect)."""
    from config import ConfigError, load_settings

    secret = "ftp://hooks.example.com/services/T0/B0/s3cr3t-token"
    with pytest.raises(ConfigError, match="ALERT_WEBHOOK_URL") as raised:
        load_settings({"ALERT_WEBHOOK_URL": secret})
    assert "s3cr3t" not in str(raised.value)
    url = "https://hooks.example.com/services/T0/B0/token/"
    assert load_settings({"ALERT_WEBHOOK_URL": url})["ALERT_WEBHOOK_URL"] == url

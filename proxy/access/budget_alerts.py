"""Alerts when a budget passes a threshold: one per budget, period and threshold across every worker (marked
in the shared ledger's file or Redis), as a log line and, when ALERT_WEBHOOK_URL is set, a JSON POST sent
from a thread of its own, so the request that crossed it never waits."""
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request

from ..storage.database import local_path
from ..storage.host_files import SharedFile

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS budget_alerts (
    scope TEXT NOT NULL, period TEXT NOT NULL, threshold REAL NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (scope, period, threshold));
"""
_MARK_TTL = 40 * 86400  # seconds an alert's mark stays in Redis: past the end of a month
_QUEUE_MAX = 1000  # alerts waiting for the webhook; past that they are logged and dropped
_BACKOFF_INITIAL = 0.5  # seconds before the webhook's second attempt, doubling after
_BACKOFF_MAX = 8.0  # seconds


class LocalMarks:
    """Alerts already sent, in a SQLite file beside the database (every worker of this instance)."""

    def __init__(self, path, clock=time.time):
        self._file, self.clock = SharedFile(path, _SCHEMA), clock

    def first(self, scope, period, threshold):
        """Mark the alert; True only for the one worker that marked it first."""
        def work(connection):
            return connection.execute("INSERT OR IGNORE INTO budget_alerts VALUES (?, ?, ?, ?)",
                                      (scope, period, threshold, self.clock())).rowcount == 1

        return self._file.transaction(work)


class RedisMarks:
    """The same in Redis (QUOTA_STORAGE_URL), for every instance."""

    def __init__(self, url, prefix="gemini-proxy:budget-alert:"):
        import redis

        self.redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.prefix = prefix

    def first(self, scope, period, threshold):
        return bool(self.redis.set(f"{self.prefix}{scope}:{period}:{threshold:g}", "1", nx=True, ex=_MARK_TTL))


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """urllib follows a redirect of a POST as a GET without the alert, and a 200 there looked delivered."""

    def redirect_request(self, *args, **kwargs):
        return None  # the 3xx is raised as an HTTPError instead


_OPENER = urllib.request.build_opener(_NoRedirects)


class Webhook:
    """POSTs alerts to a URL from a daemon thread: a timeout on each attempt, a few attempts with backoff."""

    def __init__(self, url, timeout, attempts, sleep=time.sleep, idle_seconds=60.0):
        self.url, self.timeout, self.attempts, self.sleep = url, timeout, attempts, sleep
        self.idle_seconds = idle_seconds  # the thread ends after this long with nothing to send
        self._queue = queue.Queue(_QUEUE_MAX)
        self._thread = None
        self._lock = threading.Lock()

    def send(self, alert):
        try:
            self._queue.put_nowait(alert)
        except queue.Full:
            log.warning("budget alert webhook: %d alerts waiting; this one is dropped", _QUEUE_MAX)
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="budget-alert-webhook", daemon=True)
                self._thread.start()

    def _run(self):
        while True:
            try:
                alert = self._queue.get(timeout=self.idle_seconds)
            except queue.Empty:
                # Idle: end, unless an alert came in since (its send saw this thread and started none).
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            self.deliver(alert)

    def deliver(self, alert):
        """POST `alert`; True once the receiver answered 2xx. Retried on a failure to connect, a timeout or
        a 5xx or 429; a 4xx other than 429 says the receiver will not take it, and is not retried."""
        body = json.dumps(alert).encode()
        delay, last = _BACKOFF_INITIAL, None
        for attempt in range(1, self.attempts + 1):
            request = urllib.request.Request(self.url, data=body, method="POST",
                                             headers={"Content-Type": "application/json",
                                                      "User-Agent": "gemini-proxy-budget-alerts"})
            try:
                with _OPENER.open(request, timeout=self.timeout) as response:  # noqa: S310 - operator's URL
                    response.read()
                return True
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
                if 300 <= exc.code < 400:  # not followed; its Location is not logged (it may carry a token)
                    last += ", a redirect: set ALERT_WEBHOOK_URL to the URL it points to"
                if exc.code < 500 and exc.code != 429:
                    break
            except (OSError, ValueError) as exc:  # refused, unreachable, timed out
                last = type(exc).__name__
            if attempt < self.attempts:
                self.sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX)
        log.warning("budget alert webhook: not delivered after %d attempt(s) (%s): %s", attempt, last,
                    alert["message"])
        return False


class BudgetAlerts:
    """Decides which thresholds a budget's spend has passed, and sends each one once."""

    def __init__(self, thresholds, marks, webhook=None, names=None):
        self.thresholds, self.marks, self.webhook = list(thresholds), marks, webhook
        self.names = names or (lambda scope: "operator" if scope == 0 else f"client {scope}")
        self._sent = set()  # (scope, period, threshold) this worker knows are marked: no store to ask again

    @classmethod
    def from_app(cls, app):
        config = app.config
        url = config["QUOTA_STORAGE_URL"]
        marks = RedisMarks(url) if url else LocalMarks(local_path(app, "budget-alerts"))
        webhook = Webhook(config["ALERT_WEBHOOK_URL"], config["ALERT_WEBHOOK_TIMEOUT_SECONDS"],
                          config["ALERT_WEBHOOK_ATTEMPTS"]) if config["ALERT_WEBHOOK_URL"] else None
        return cls(config["BUDGET_ALERT_THRESHOLDS"], marks, webhook)

    def check(self, scope, period, period_key, spent_usd, budget_usd):
        """Alert once for each threshold `spent_usd` has passed (scope: a client id, or 0 the operator)."""
        if budget_usd <= 0:
            return
        share = spent_usd / budget_usd
        for threshold in self.thresholds:
            if share < threshold:
                break
            key = (scope, period, period_key, threshold)
            if key in self._sent:
                continue
            try:
                # The period's name with its first day: a day's and the month's both begin on the 1st.
                first = self.marks.first(str(scope), f"{period}:{period_key}", threshold)
            except Exception:  # noqa: BLE001 - the store being down must not fail the request
                log.warning("budget alert unmarked (its store did not answer); not sent", exc_info=True)
                return
            self._sent.add(key)
            if len(self._sent) > 10_000:
                self._sent = {key}
            if first:
                self._alert(scope, period, period_key, threshold, spent_usd, budget_usd)

    def _alert(self, scope, period, period_key, threshold, spent_usd, budget_usd):
        who = self.names(scope)
        adjective = {"day": "daily", "month": "monthly"}.get(period, period)
        message = (f"budget alert: {who} has spent {spent_usd:.4f} USD of its {adjective} budget of "
                   f"{budget_usd:.2f} USD ({spent_usd / budget_usd:.0%}, past {threshold:.0%}) in the period "
                   f"from {period_key}")
        log.warning("%s", message)
        if self.webhook is not None:
            self.webhook.send({"kind": "budget_threshold", "scope": "operator" if scope == 0 else "client",
                               "client_id": None if scope == 0 else scope, "period": period,
                               "period_start": period_key, "threshold": threshold,
                               "spent_usd": round(spent_usd, 6), "budget_usd": budget_usd, "message": message})

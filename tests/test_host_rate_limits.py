"""Rate limits that hold across a host's workers without Redis: the SQLite storage of proxy/access/limit_store.py,
the default that uses it, and /health when the configured storage (Redis) stops answering."""
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from proxy.access.limit_store import HostFileStorage
from tests import processes
from tests.conftest import Clock
from tests.processes import free_port
from tests.test_access import GENERATE, NATIVE_BODY, NATIVE_PATH, call, issue


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'proxy.db.rate-limits'}"


def test_the_scheme_is_registered_with_limits(url):
    assert isinstance(storage_from_string(url), HostFileStorage)
    with pytest.raises(ValueError, match="sqlite:///"):
        HostFileStorage("sqlite:///")


def test_two_storages_on_one_file_share_their_counts(url):
    """Two workers of a host: each has its own storage object and connection, on the same file."""
    limit = parse("5/minute")
    workers = [MovingWindowRateLimiter(storage_from_string(url)) for _ in range(2)]
    admitted = [workers[n % 2].hit(limit, "client:1") for n in range(8)]
    assert admitted == [True] * 5 + [False] * 3
    assert workers[1].get_window_stats(limit, "client:1").remaining == 0
    assert workers[0].hit(limit, "client:2")  # another key has its own window


def test_the_window_moves(url):
    clock = Clock()
    limiter = MovingWindowRateLimiter(HostFileStorage(url, clock=clock))
    limit = parse("3/minute")
    for step in range(3):  # one hit at 0, 20 and 40 s
        assert limiter.hit(limit, "k")
        clock.now += 20
    clock.now -= 1  # 59 s after the first: still full
    assert not limiter.hit(limit, "k")
    stats = limiter.get_window_stats(limit, "k")
    assert stats.remaining == 0 and stats.reset_time == pytest.approx(1_000_000.0 + 60)  # when the oldest leaves
    clock.now += 1.5  # the first hit has left the window: one place, not three
    assert limiter.hit(limit, "k")
    assert not limiter.hit(limit, "k")
    clock.now += 60  # all gone
    assert limiter.get_window_stats(limit, "k").remaining == 3


def test_old_entries_are_pruned(url, tmp_path):
    clock = Clock()
    storage = HostFileStorage(url, clock=clock)
    for key in ("a", "b", "c"):
        assert storage.acquire_entry(key, 10, 60)
    clock.now += 120  # past every window, and past the sweep's interval
    assert storage.acquire_entry("d", 10, 60)
    rows = storage._read(lambda connection, now: connection.execute("SELECT key FROM limit_hits").fetchall())
    assert rows == [("d",)]


def test_concurrent_threads_on_two_storages_never_over_admit(url):
    storages = [storage_from_string(url) for _ in range(2)]
    admitted, start = [], threading.Barrier(16)

    def worker(n):
        start.wait()
        for _ in range(20):
            admitted.append(storages[n % 2].acquire_entry("client:1", 50, 60))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(admitted) == 320 and admitted.count(True) == 50


def test_a_new_file_raced_for_waits_for_wal_instead_of_failing(monkeypatch):
    """SQLite answers the loser of two connections switching a new file to WAL "locked" without waiting."""
    import sqlite3

    from proxy.storage import host_files

    class Connection:
        tries = 0

        def execute(self, sql):
            self.tries += 1
            if self.tries < 3:
                raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(host_files.time, "sleep", lambda seconds: None)
    connection = Connection()
    host_files.use_wal(connection)
    assert connection.tries == 3
    locked = Connection()
    locked.tries = float("-inf")  # locked for ever: it gives up at its deadline and says why
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        host_files.use_wal(locked, deadline=0.05)


def test_counters_clear_and_reset(url):
    clock = Clock()
    storage = HostFileStorage(url, clock=clock)
    assert [storage.incr("c", 10) for _ in range(3)] == [1, 2, 3]
    assert storage.get("c") == 3 and storage.get_expiry("c") == clock.now + 10
    clock.now += 11
    assert storage.get("c") == 0 and storage.incr("c", 10) == 1  # a new fixed window
    storage.acquire_entry("m", 5, 60, amount=2)
    assert storage.get_moving_window("m", 5, 60) == (clock.now, 2)
    storage.clear("m")
    assert storage.get_moving_window("m", 5, 60) == (clock.now, 0)
    assert storage.reset() == 1 and storage.get("c") == 0
    assert storage.check()


def test_the_default_storage_is_a_file_beside_the_database(make_app, tmp_path):
    app = make_app(RATE_LIMIT="3/minute")
    assert app.config["RATELIMIT_STORAGE_URI"] == f"sqlite:///{tmp_path / 'proxy.db'}.rate-limits"
    assert app.test_client().get("/health").json["rate_limits"] == "host"


def test_two_workers_of_a_host_share_the_limit_by_default(make_app):
    """Two apps on one database are two workers of one host: together they admit the limit, not twice it."""
    workers = [make_app(RATE_LIMIT="3/minute") for _ in range(2)]
    _, secret = issue(workers[0])
    clients = [app.test_client() for app in workers]
    statuses = [call(clients[n % 2], "generate", secret).status_code for n in range(6)]
    assert statuses == [200] * 3 + [429] * 3


def test_memory_stays_available_and_counts_per_worker(make_app):
    workers = [make_app(RATE_LIMIT="3/minute", RATE_LIMIT_STORAGE_URL="memory://") for _ in range(2)]
    _, secret = issue(workers[0])
    clients = [app.test_client() for app in workers]
    statuses = [call(clients[n % 2], "generate", secret).status_code for n in range(8)]
    assert statuses == [200] * 6 + [429] * 2
    assert clients[0].get("/health").json["rate_limits"] == "worker"


def test_unreachable_redis_falls_back_per_worker_and_health_says_so(make_app, caplog):
    caplog.set_level(logging.WARNING)
    app = make_app(RATE_LIMIT="2/minute", RATE_LIMIT_STORAGE_URL=f"redis://127.0.0.1:{free_port()}/0")
    client = app.test_client()
    health = client.get("/health").json
    assert health["rate_limits"] == "instances" and "rate-limit" not in health.get("message", "")
    _, secret = issue(app)
    statuses = [call(client, "generate", secret).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]  # still served, and still limited: in this worker's memory
    assert "Rate limit storage unreachable" in caplog.text
    health = client.get("/health").json
    assert health["rate_limits"] == "worker"
    assert "rate-limit storage is unreachable" in health["message"] and "per worker" in health["message"]


def test_a_bad_storage_url_stops_start_up():
    from config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="RATE_LIMIT_STORAGE_URL"):
        load_settings({"RATE_LIMIT_STORAGE_URL": "postgres://db/limits"})
    assert load_settings({})["RATE_LIMIT_STORAGE_URL"] == ""


@pytest.mark.e2e
@pytest.mark.parametrize("api", ["generate", "compat", "native"])
def test_gunicorn_workers_without_redis_serve_exactly_the_limit(gunicorn, api):
    """Two Gunicorn workers, no Redis, RATE_LIMIT=10/minute: of 30 requests at once, 10 are served and
    20 refused with Retry-After, whichever worker takes each (the access log names the worker)."""
    secret = "host-limit-client-key-0123456789"
    server = gunicorn(RATE_LIMIT="10/minute", API_KEYS=secret, ACCESS_LOG="true",
                      GUNICORN_CMD_ARGS="--access-logformat 'limit-test pid=%(p)s status=%(s)s'")
    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(lambda _: over_http(server, api, secret), range(30)))
    statuses = [answer.status_code for answer in answers]
    assert statuses.count(200) == 10 and statuses.count(429) == 20, statuses
    assert all(int(answer.headers["Retry-After"]) > 0 for answer in answers if answer.status_code == 429)
    served_by = {line.split("pid=")[1].split()[0] for line in server.output().splitlines()
                 if "limit-test pid=" in line}
    assert len(served_by) == 2, f"one worker took every request: {served_by}"


def over_http(server, api, secret):
    path, body = {"generate": ("/gemini/generate", GENERATE), "compat": ("/gemini-proxy", {"prompt": "hello"}),
                  "native": (NATIVE_PATH, NATIVE_BODY)}[api]
    return requests.post(f"{server.url}{path}", json=body, headers={"X-API-KEY": secret} if secret else {}, timeout=60)


@pytest.mark.e2e
def test_gunicorn_keeps_serving_when_redis_goes_away_and_health_says_limits_are_per_worker(gunicorn, tmp_path):
    redis = processes.start_redis(str(tmp_path))
    try:
        server = gunicorn(RATE_LIMIT="3/minute", RATE_LIMIT_STORAGE_URL=redis.url, WEB_CONCURRENCY=1)
        assert [over_http(server, "generate", None).status_code for _ in range(2)] == [200, 200]
        health = requests.get(f"{server.url}/health", timeout=10).json()
        assert health["rate_limits"] == "instances" and "rate-limit" not in health.get("message", "")
    finally:
        redis.stop()
    # Redis is gone: the worker counts alone (one place left in Redis is forgotten: 3 in its memory).
    statuses = [over_http(server, "generate", None).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    health = requests.get(f"{server.url}/health", timeout=10).json()
    assert health["rate_limits"] == "worker" and "counts rate limits alone" in health["message"]
    assert "Rate limit storage unreachable - falling back to in-memory storage" in server.output()

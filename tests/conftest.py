"""Fixtures: the emulator (a thread for in-process tests, a real process for e2e ones), the app built
from a dict (and the operator's, with its admin client), Gunicorn servers; helpers the test files share.
The fast tier's rules (no process outside e2e) are in fast_tier.py."""
import os
import time

import pytest
import requests
import trustme
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from app import create_app
from tests import processes
from tests.emulator_thread import ThreadedEmulator

KEYS = ["test-key-alpha-0001", "test-key-bravo-0002", "test-key-charlie-0003"]
MODELS = ["gemini-2.5-flash", "gemini-2.5-flash-lite"]
ADMIN_KEY = "admin-key-for-tests-0123456789"  # admin_app's ADMIN_API_KEY

pytest_plugins = ["tests.fast_tier"]


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch):
    """No shell variable leaks into a test."""
    for name in list(os.environ):
        if name.startswith(("GEMINI_", "DATABASE_", "RETRY_", "REQUEST_", "UPSTREAM_", "QUOTA_", "MAX_", "API_KEYS",
                            "ADMIN_", "RATE_LIMIT", "REQUIRE_", "CORS_", "DAILY_", "ALLOWED_", "LOG_BODY")):
            monkeypatch.delenv(name)


class Emulator:
    def __init__(self, process):
        self.process, self.url = process, process.url
        # The thread's app is at hand: its control API is called in-process, with no connection per call.
        self.local = process.app.test_client() if isinstance(process, ThreadedEmulator) else None

    def control(self, what, payload=None):
        post = payload is not None or what == "reset"
        if self.local is not None:
            response = (self.local.post if post else self.local.get)(f"/_emulator/{what}", json=payload)
            assert response.status_code == 200, response.get_data(as_text=True)
            return response.get_json()
        response = (requests.post if post else requests.get)(f"{self.url}/_emulator/{what}", json=payload, timeout=5)
        response.raise_for_status()
        return response.json()

    def reset(self):
        return self.control("reset")

    def fault(self, **fault):
        return self.control("faults", fault)

    def configure(self, **settings):
        return self.control("config", settings)

    def stats(self):
        return self.control("stats")

    def requests(self):
        return self.control("requests")

    def received(self):
        """Every request that reached the emulator as it arrived: method, raw target, headers."""
        return self.control("received")


@pytest.fixture(scope="session")
def emulator_process(tmp_path_factory):
    process = processes.start_emulator(str(tmp_path_factory.mktemp("emulator")), KEYS)
    yield Emulator(process)
    process.stop()


@pytest.fixture(scope="session")
def emulator_thread():
    server = ThreadedEmulator(KEYS)
    yield Emulator(server)
    server.stop()


@pytest.fixture
def emulator(request):
    """The emulator, reset: its own process for an e2e test (Gunicorn's workers and load tests reach it),
    a thread of this one otherwise, so the fast tier starts no process."""
    chosen = request.getfixturevalue("emulator_process" if request.node.get_closest_marker("e2e")
                                     else "emulator_thread")
    chosen.reset()
    yield chosen
    chosen.reset()


class ClosingClient(FlaskClient):
    """Closes a response whose length is known, as a real server does once the body is sent (that is
    when records are written); a streamed one stays open until the test reads and closes it."""

    def open(self, *args, **kwargs):
        response = super().open(*args, **kwargs)
        if "Content-Length" in response.headers:
            response.get_data()
            response.close()
        return response


class Sleeps(list):
    """Records the sleeps the engine asks for instead of sleeping."""

    def __call__(self, seconds):
        self.append(seconds)


class Clock:
    """Time a test moves by hand (`clock.now += seconds`), for the parts that take a clock."""

    def __init__(self, now=1_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def make_app(tmp_path, emulator):
    def build(**overrides):
        config = {
            "TESTING": True,
            "GEMINI_API_KEYS": KEYS[:1],
            "GEMINI_MODELS": MODELS,
            "GEMINI_BASE_URL": emulator.url,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'proxy.db'}",
        }
        config.update(overrides)
        app = create_app(config)
        app.test_client_class = ClosingClient
        engine = app.extensions["engine"]  # both APIs' retries: /gemini/generate's and the pass-through's
        app.sleeps = Sleeps()
        engine.sleep = app.sleeps
        # Time the engine sleeps passes on its clock too, so deadlines are met without waiting.
        engine.clock = lambda: time.monotonic() + sum(app.sleeps)
        return app

    return build


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def as_admin(client):
    """`client`, sending the admin key on every request from now on."""
    client.environ_base["HTTP_X_API_KEY"] = ADMIN_KEY
    return client


@pytest.fixture
def admin_app(make_app):
    """The app with its operator endpoints on: ADMIN_API_KEY is ADMIN_KEY."""
    return make_app(ADMIN_API_KEY=ADMIN_KEY)


@pytest.fixture
def admin_client(admin_app):
    """A client of admin_app that sends the admin key on every request; app.test_client() sends none."""
    return as_admin(admin_app.test_client())


@pytest.fixture
def postgres():
    """A throwaway PostgreSQL server (Debian's package; scripts/test installs it)."""
    server = processes.Postgres().start()
    yield server
    server.remove()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    process = processes.start_redis(str(tmp_path_factory.mktemp("redis")))
    yield process
    process.stop()


def private_authority(folder, *hosts):
    """`folder`, holding a new private CA's certificate (ca.pem) and one it signed for `hosts` (server.pem:
    the key and the chain)."""
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    ca.issue_cert(*hosts).private_key_and_cert_chain_pem.write_to_path(str(folder / "server.pem"))
    return folder


def wait_for(predicate, timeout=30.0, message="condition"):
    """Poll until `predicate()` holds; fail the test, naming `message`, if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {message}")


def samples(text):
    """{(name, sorted labels): value} of a Prometheus text exposition."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found, name, **labels):
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def generate_over_http(server, text, timeout=60):
    """POST /gemini/generate to a running server."""
    return requests.post(f"{server.url}/gemini/generate", json={"prompt": {"text": text}}, timeout=timeout)


def native_over_http(server, text, path=f"/v1beta/models/{MODELS[0]}:generateContent", key=KEYS[0], timeout=60):
    """A native generateContent (or `path`) call to a running server, with `key` as Gemini's key."""
    return requests.post(f"{server.url}{path}", json={"contents": [{"parts": [{"text": text}]}]},
                         headers={"x-goog-api-key": key}, timeout=timeout)


def rows(database_url, sql):
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql))]
    finally:
        engine.dispose()


def wait_recorded(database_url, responses, timeout=30.0):
    """Wait until the request of every response is in request_log: a test that then asserts something
    is absent from the records (a key, a secret) would otherwise pass by looking before they are written."""
    wanted = {response.headers["X-Request-ID"] for response in responses}
    assert len(wanted) == len(responses), "a response without its own X-Request-ID"

    def written():
        found = {rid for (rid,) in rows(database_url, "SELECT request_id FROM request_log")}
        return wanted <= found

    wait_for(written, timeout, f"the records of {len(wanted)} request(s)")


def wait_settled(server, admin_key=None, timeout=30.0):
    """Wait until a running server holds no request in flight and no record in its spool or memory:
    every record of what it has answered is in the database. A test that then asserts something is
    absent from what the server stored would otherwise pass by looking too early."""
    headers = {"X-API-Key": admin_key} if admin_key else {}

    def settled():
        metrics = requests.get(f"{server.url}/metrics", headers=headers, timeout=10)
        metrics.raise_for_status()
        if value(samples(metrics.text), "gemini_proxy_in_flight_requests") != 0:
            return False  # a response still open: its record is not even spooled yet
        spool = requests.get(f"{server.url}/health", timeout=10).json()["spool"]
        return spool["depth"] == 0 and spool["held_in_memory"] == 0

    wait_for(settled, timeout, "every record in the database")


@pytest.fixture
def gunicorn(tmp_path, emulator):
    """A factory for Gunicorn servers against the emulator; every one started is stopped."""
    started = []

    def start(**settings):
        settings.setdefault("GEMINI_API_KEY", KEYS[0])
        settings.setdefault("GEMINI_BASE_URL", emulator.url)
        settings.setdefault("GEMINI_MODELS", ",".join(MODELS))
        settings.setdefault("DATABASE_URL", f"sqlite:///{tmp_path / 'proxy.db'}")
        settings.setdefault("ACCESS_LOG", "false")
        process = processes.start_gunicorn(str(tmp_path), **settings)
        started.append(process)
        process.database_url = settings["DATABASE_URL"]
        return process.wait_ready(log_marker="Worker ready", count=process.workers)

    yield start
    for process in started:
        process.stop()

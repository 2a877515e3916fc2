"""A client's open Live sessions counted across instances in Redis (QUOTA_STORAGE_URL): the limit holds
for the deployment, a dead instance's sessions expire, and while Redis is away the host's file counts
(said once in the log, and in /health)."""
import json
import logging
import uuid

import pytest
import requests
import simple_websocket

from proxy.access.sessions import HostSessions, LiveSessions
from proxy.access.sessions_redis import TTL_SECONDS, RedisSessions
from tests.conftest import KEYS, Clock, rows, wait_for
from tests.processes import free_port
from tests.test_live_e2e import LIVE_MODEL, closed, raw_session, ws_url

CLIENT = 7


def instance(tmp_path, name, url, clock, prefix):
    """One instance's sessions: a host file of its own, the shared Redis (with this test's prefix)."""
    shared = RedisSessions(url, clock=clock, prefix=prefix) if url else None
    return LiveSessions(HostSessions(str(tmp_path / f"{name}.live-sessions")), shared, clock=clock)


@pytest.fixture
def prefix():
    return f"test-live:{uuid.uuid4().hex}:"  # the Redis server is the session's: each test keys apart


@pytest.mark.e2e
def test_the_limit_holds_across_instances(tmp_path, redis_server, prefix):
    clock = Clock()
    a, b = (instance(tmp_path, name, redis_server.url, clock, prefix) for name in "ab")
    assert a.open("s1", CLIENT, 2) and b.open("s2", CLIENT, 2)
    assert not a.open("s3", CLIENT, 2) and not b.open("s3", CLIENT, 2)
    assert a.open("other", CLIENT + 1, 2)  # another client counts apart
    assert b.open("open-auth", None, 1) and not a.open("open-auth-2", None, 1)
    a.close("s1")
    assert b.open("s3", CLIENT, 2)
    assert a.count(CLIENT) == b.count(CLIENT) == 2
    assert a.sharing() == {"shared_by": "instances", "reachable": True}
    assert b.host.count(CLIENT) == 0  # nothing in the host's file: Redis counted them


@pytest.mark.e2e
def test_a_dead_instances_sessions_expire_and_a_living_ones_do_not(tmp_path, redis_server, prefix):
    clock = Clock()
    living, dying, other = (instance(tmp_path, name, redis_server.url, clock, prefix) for name in "abc")
    assert living.open("alive", CLIENT, 2) and dying.open("dead", CLIENT, 2)
    for _ in range(3):  # longer than a TTL: the living instance's heartbeats push its session on
        clock.now += TTL_SECONDS / 2
        living.beat()
    assert other.count(CLIENT) == 1  # the dead instance's session stopped counting, the living one's not
    assert other.open("freed", CLIENT, 2)
    assert not other.open("one-too-many", CLIENT, 2)


@pytest.mark.e2e
def test_a_closed_session_is_not_counted_again_by_a_heartbeat(tmp_path, redis_server, prefix):
    clock = Clock()
    a = instance(tmp_path, "a", redis_server.url, clock, prefix)
    assert a.open("s1", CLIENT, 1)
    a.close("s1")
    a.beat()
    assert a.count(CLIENT) == 0 and a.open("s2", CLIENT, 1)


def test_unreachable_redis_falls_back_to_the_host_file_and_says_so_once(tmp_path, prefix, caplog):
    clock = Clock()
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    a = instance(tmp_path, "a", dead, clock, prefix)
    with caplog.at_level(logging.WARNING, logger="proxy.access.sessions"):
        assert a.open("s1", CLIENT, 2)
        clock.now += 10  # past the hold-off: Redis is tried again, and fails again
        assert a.open("s2", CLIENT, 2)
        assert not a.open("s3", CLIENT, 2)  # the host's file holds the limit meanwhile
    warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    assert a.sharing() == {"shared_by": "host", "reachable": False}
    assert a.host.count(CLIENT) == 2
    a.close("s1")  # closed where it was opened
    assert a.host.count(CLIENT) == 1


def test_without_redis_the_host_file_counts_every_worker(tmp_path):
    path = str(tmp_path / "live-sessions")
    workers = [LiveSessions(HostSessions(path)), LiveSessions(HostSessions(path))]
    assert workers[0].open("s1", CLIENT, 1) and not workers[1].open("s2", CLIENT, 1)
    assert workers[1].sharing() == {"shared_by": "host", "reachable": True}


def test_health_says_who_shares_the_live_session_count(make_app, tmp_path):
    assert make_app().test_client().get("/health").json["live_sessions_sharing"] == "host"
    app = make_app(QUOTA_STORAGE_URL=f"redis://127.0.0.1:{free_port()}/0")
    assert app.test_client().get("/health").json["live_sessions_sharing"] == "instances"
    assert app.extensions["live_sessions"].open("s1", CLIENT, 1)  # Redis does not answer: the host counts
    health = app.test_client().get("/health").json
    assert health["live_sessions_sharing"] == "host"
    assert "the Live session limit counts this host's sessions only" in health["message"]


@pytest.mark.e2e
def test_two_gunicorn_instances_on_one_redis_hold_the_limit_across_them(gunicorn, emulator, redis_server, tmp_path):
    """Databases (and so host files) of their own, so only Redis joins their counts."""
    import redis

    store = redis.Redis.from_url(redis_server.url)
    for key in store.scan_iter("gemini-proxy:live:*"):
        store.delete(key)
    client_key = "live-shared-client-0123456789"
    settings = dict(GEMINI_API_KEY=KEYS[0], API_KEYS=client_key, LIVE_SESSIONS_PER_CLIENT="2",
                    QUOTA_STORAGE_URL=redis_server.url, WEB_CONCURRENCY=2)
    first = gunicorn(DATABASE_URL=f"sqlite:///{tmp_path / 'first.db'}", **settings)
    second = gunicorn(DATABASE_URL=f"sqlite:///{tmp_path / 'second.db'}", **settings)
    ids = [rows(server.database_url, "SELECT id FROM api_clients") for server in (first, second)]
    assert ids[0] == ids[1] and len(ids[0]) == 1  # the same client in both, as one shared database has
    for server in (first, second):
        assert requests.get(f"{server.url}/health", timeout=10).json()["live_sessions_sharing"] == "instances"
    headers = {"X-API-KEY": client_key}

    held = [raw_session(server, headers=headers) for server in (first, second)]
    assert all("setupComplete" in answer for _, answer in held)
    for server in (first, second):  # each instance alone holds one: only Redis makes two
        extra = simple_websocket.Client.connect(ws_url(server), headers=headers)
        extra.send(json.dumps({"setup": {"model": f"models/{LIVE_MODEL}"}}))
        code, reason = closed(extra)
        assert code == 1013 and reason.startswith("SESSION_LIMIT")
    held[0][0].close()
    wait_for(lambda: store.zcard(f"gemini-proxy:live:{ids[0][0][0]}") == 1, message="the closed session forgotten")
    again, answer = raw_session(second, headers=headers)  # the place freed on the first instance
    assert "setupComplete" in answer
    for ws in (held[1][0], again):
        ws.close()
    for server in (first, second):
        assert "Traceback" not in server.output()

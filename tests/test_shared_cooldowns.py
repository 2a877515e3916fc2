"""Key x model cool-downs shared by every worker of a host (a file beside the database) and by every
instance (Redis): a rest learnt by one pool spares the others the call; expiry; Redis down falls back."""
import http.client
import json
import logging
import socket
import time

import pytest
import requests

from proxy.upstream.cooldowns import FileRests, MemoryRests, RedisRests
from proxy.upstream.keypool import KeyPool, fingerprint
from tests.conftest import KEYS, MODELS, Clock, rows
from tests.processes import worker_holding, workers_of

MODEL = MODELS[0]


class Failure:
    """What the engine hands rest_for_quota: a 429's RetryInfo delay, or a per-day quota."""

    def __init__(self, retry_delay=None, daily_quota=False):
        self.retry_delay, self.daily_quota = retry_delay, daily_quota


def pools_on_one_file(tmp_path, clock, count=2, refresh_seconds=1.0):
    """`count` pools as `count` workers of one host would hold them: each with its own connection."""
    path = str(tmp_path / "proxy.db.cooldowns")
    return [KeyPool(KEYS[:2], clock=clock, store=FileRests(path), refresh_seconds=refresh_seconds)
            for _ in range(count)]


def test_a_rest_learnt_by_one_pool_spares_the_other_on_the_same_file(tmp_path):
    clock = Clock()
    first, second = pools_on_one_file(tmp_path, clock)
    assert set(second.candidates(MODEL)) == set(KEYS[:2])
    first.rest_for_quota(KEYS[0], MODEL, Failure(retry_delay=60.0), default_seconds=30.0)
    clock.now += 1.0  # the other's copy is as old as its refresh: it reads the file again
    assert second.candidates(MODEL) == [KEYS[1]]
    assert second.candidates(MODELS[1]) != []  # only that model rests
    (cooldown,) = second.cooldowns()
    assert (cooldown.key_id, cooldown.model, cooldown.reason) == (fingerprint(KEYS[0]), MODEL, "quota")
    assert cooldown.until == pytest.approx(clock.now + 59.0)


def test_a_worker_trusts_its_copy_for_the_refresh_time_only(tmp_path):
    clock = Clock()
    first, second = pools_on_one_file(tmp_path, clock, refresh_seconds=1.0)
    second.candidates(MODEL)  # read now: nothing rests
    first.rest(KEYS[0], MODEL, 60.0, "quota")
    clock.now += 0.5
    assert KEYS[0] in second.candidates(MODEL)  # its copy is half a second old: no read
    clock.now += 0.5
    assert second.candidates(MODEL) == [KEYS[1]]
    assert first.candidates(MODEL) == [KEYS[1]]  # the worker that learnt it knows at once


def test_every_kind_of_rest_is_shared_and_tells_when_a_key_returns(tmp_path):
    clock = Clock()
    first, second = pools_on_one_file(tmp_path, clock, refresh_seconds=0.0)
    first.rest_for_quota(KEYS[0], MODEL, Failure(daily_quota=True), default_seconds=30.0)
    first.rest(KEYS[1], MODEL, 120.0, "key_rejected")
    assert second.candidates(MODEL) == []
    reasons = {c.key_id: c.reason for c in second.cooldowns()}
    assert reasons == {fingerprint(KEYS[0]): "quota_per_day", fingerprint(KEYS[1]): "key_rejected"}
    assert second.seconds_until_available(MODEL) == pytest.approx(min(120.0, first.seconds_until_available(MODEL)))
    assert second.seconds_until_available(MODELS[1]) == 0.0


def test_rests_end_by_themselves_and_leave_the_file(tmp_path):
    clock = Clock()
    first, second = pools_on_one_file(tmp_path, clock, refresh_seconds=0.0)
    first.rest(KEYS[0], MODEL, 5.0, "quota")
    assert second.candidates(MODEL) == [KEYS[1]]
    clock.now += 5.1
    assert set(second.candidates(MODEL)) == set(KEYS[:2]) and second.cooldowns() == []
    assert set(first.candidates(MODEL)) == set(KEYS[:2]) and first.cooldowns() == []
    first.rest(KEYS[1], MODELS[1], 5.0, "quota")  # a write drops what has ended
    path = tmp_path / "proxy.db.cooldowns"
    assert rows(f"sqlite:///{path}", "SELECT key_id, model FROM cooldowns") == [(fingerprint(KEYS[1]), MODELS[1])]


def test_the_file_holds_fingerprints_never_keys(tmp_path):
    clock = Clock()
    (pool,) = pools_on_one_file(tmp_path, clock, count=1)
    for key in KEYS[:2]:
        pool.rest(key, MODEL, 60.0, "quota")
    stored = b"".join(path.read_bytes() for path in tmp_path.iterdir())
    assert stored and not any(key.encode() in stored for key in KEYS)
    assert fingerprint(KEYS[0]).encode() in stored


def test_a_pool_of_its_own_keeps_its_rests_to_itself():
    clock = Clock()
    first, second = (KeyPool(KEYS[:1], clock=clock, store=MemoryRests()) for _ in range(2))
    first.rest(KEYS[0], MODEL, 60.0, "quota")
    assert first.candidates(MODEL) == [] and second.candidates(MODEL) == KEYS[:1]
    assert first.sharing() == {"shared_by": "worker", "reachable": True}


def test_the_app_shares_rests_through_a_file_beside_its_database(make_app):
    first, second = make_app(GEMINI_API_KEYS=KEYS[:2]), make_app(GEMINI_API_KEYS=KEYS[:2])
    first.extensions["gemini"].pool.rest(KEYS[0], MODEL, 60.0, "quota")
    cooldowns = second.test_client().get("/health").json["cooldowns"]
    assert [(c["key_id"], c["model"], c["reason"]) for c in cooldowns] == [(fingerprint(KEYS[0]), MODEL, "quota")]
    assert 55 < cooldowns[0]["seconds_left"] <= 60
    assert second.extensions["gemini"].pool.sharing() == {"shared_by": "host", "reachable": True}


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens there once the socket is closed


def test_redis_unreachable_falls_back_to_the_host_file_and_warns_once_a_minute(tmp_path, caplog):
    clock, warn_clock = Clock(), Clock()
    path = str(tmp_path / "proxy.db.cooldowns")
    url = f"redis://127.0.0.1:{closed_port()}/0"
    first, second = (KeyPool(KEYS[:2], clock=clock, refresh_seconds=0.0,
                             store=RedisRests(url, FileRests(path), clock=warn_clock)) for _ in range(2))
    with caplog.at_level(logging.WARNING, logger="proxy.upstream.cooldowns"):
        first.rest(KEYS[0], MODEL, 60.0, "quota")
        assert second.candidates(MODEL) == [KEYS[1]]  # through the host's file
        assert first.candidates(MODEL) == [KEYS[1]]
        warned = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(warned) == 2  # once per worker, not once per call
        assert "this host's workers only" in warned[0].getMessage()
        warn_clock.now += 61
        second.candidates(MODEL)
        assert len([r for r in caplog.records if "unreachable" in r.getMessage()]) == 3
    assert second.sharing() == {"shared_by": "host", "reachable": False}


@pytest.fixture
def redis_prefix(request, redis_server):
    import redis

    prefix = f"test-cooldowns-{request.node.name}:"
    client = redis.Redis.from_url(redis_server.url)
    for name in client.scan_iter(prefix + "*"):
        client.delete(name)
    yield prefix
    client.close()


@pytest.mark.e2e
def test_redis_shares_rests_across_instances_with_the_rest_as_ttl(tmp_path, redis_server, redis_prefix):
    import redis

    clock = Clock(time.time())
    # Two instances: each its own host file, so only Redis joins them.
    first, second = (KeyPool(KEYS[:2], clock=clock, refresh_seconds=0.0,
                             store=RedisRests(redis_server.url, FileRests(str(tmp_path / f"host{n}.cooldowns")),
                                              prefix=redis_prefix)) for n in range(2))
    first.rest(KEYS[0], MODEL, 60.0, "quota")
    assert second.candidates(MODEL) == [KEYS[1]]
    (cooldown,) = second.cooldowns()
    assert (cooldown.key_id, cooldown.reason) == (fingerprint(KEYS[0]), "quota")
    assert second.sharing() == {"shared_by": "instances", "reachable": True}

    client = redis.Redis.from_url(redis_server.url)
    (name,) = client.scan_iter(redis_prefix + "*")
    assert name.decode() == f"{redis_prefix}{fingerprint(KEYS[0])}:{MODEL}"
    assert 59_000 < client.pttl(name) <= 60_000  # the key lives as long as the rest
    assert KEYS[0] not in client.get(name).decode()
    assert json.loads(client.get(name))["until"] == pytest.approx(clock.now + 60.0)

    clock.now += 60.1  # Redis's own clock has not moved: the rest's end is read from the value
    assert set(second.candidates(MODEL)) == set(KEYS[:2])


def worker_connections(server, count=2, tries=60):
    """Keep-alive connections to `count` different workers of `server`: {pid: connection}."""
    port = int(server.url.rsplit(":", 1)[1])
    pids, held = workers_of(server.proc.pid), {}
    for _ in range(tries):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.connect()
        connection.request("GET", "/health")
        connection.getresponse().read()
        pid = worker_holding(connection.sock.getsockname(), port, pids)
        if pid in held:
            connection.close()
        else:
            held[pid] = connection
        if len(held) == count:
            return held
    raise AssertionError(f"{tries} connections reached only workers {sorted(held)}")


def call(connection, method, path, body=None):
    connection.request(method, path, body=json.dumps(body) if body is not None else None,
                       headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    return response.status, json.loads(response.read())


@pytest.mark.e2e
def test_a_rest_one_worker_learns_spares_the_other_worker_the_call(gunicorn, emulator):
    server = gunicorn(GEMINI_API_KEY=",".join(KEYS[:2]), WEB_CONCURRENCY=2, COOLDOWN_REFRESH_SECONDS="1")
    emulator.fault(status=429, key=KEYS[0], model=MODEL, retry_delay="60s", times=None)
    connections = worker_connections(server)
    (learner, pid_a), (other, pid_b) = ((c, pid) for pid, c in connections.items())
    mark = len(emulator.received())

    status, body = call(learner, "POST", "/gemini/generate", {"prompt": {"text": "first"}})
    assert status == 200 and body["model"] == MODEL  # the other key served it
    time.sleep(1.1)  # the other worker's copy of the shared rests is at most COOLDOWN_REFRESH_SECONDS old
    for n in range(10):
        for connection in (other, learner):
            status, body = call(connection, "POST", "/gemini/generate", {"prompt": {"text": f"q{n}"}})
            assert status == 200 and body["model"] == MODEL

    reached = [r for r in emulator.received()[mark:] if ":generateContent" in r["target"]]
    resting = [r for r in reached if r["headers"].get("x-goog-api-key") == KEYS[0]]
    assert len(reached) == 22 and len(resting) == 1  # one 429, then never again from either worker
    port = int(server.url.rsplit(":", 1)[1])
    for connection, pid in ((learner, pid_a), (other, pid_b)):
        assert worker_holding(connection.sock.getsockname(), port, [pid_a, pid_b]) == pid  # still that worker
        status, health = call(connection, "GET", "/health")
        assert [(c["key_id"], c["model"], c["reason"]) for c in health["cooldowns"]] == \
            [(fingerprint(KEYS[0]), MODEL, "quota")]
        assert 50 < health["cooldowns"][0]["seconds_left"] <= 60
        status, fallbacks = call(connection, "GET", "/analytics/fallbacks")
        assert status == 200
        assert [(c["key_id"], c["model"]) for c in fallbacks["cooldowns_now"]] == [(fingerprint(KEYS[0]), MODEL)]
        connection.close()


def resting_calls(emulator, mark):
    reached = [r for r in emulator.received()[mark:] if ":generateContent" in r["target"]]
    return len(reached), len([r for r in reached if r["headers"].get("x-goog-api-key") == KEYS[0]])


def generate_on(server, n):
    response = requests.post(f"{server.url}/gemini/generate", json={"prompt": {"text": f"q{n}"}}, timeout=60)
    assert response.status_code == 200 and response.json()["model"] == MODEL
    return response


@pytest.mark.e2e
def test_redis_spares_another_instance_the_call(gunicorn, emulator, redis_server, redis_prefix, tmp_path):
    """Two instances with databases (and so host files) of their own: only Redis joins them."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    for name in client.scan_iter("gemini-proxy:cooldown:*"):
        client.delete(name)
    first, second = (gunicorn(GEMINI_API_KEY=",".join(KEYS[:2]), WEB_CONCURRENCY=1, QUOTA_STORAGE_URL=redis_server.url,
                              DATABASE_URL=f"sqlite:///{tmp_path / f'instance{n}.db'}") for n in range(2))
    emulator.fault(status=429, key=KEYS[0], model=MODEL, retry_delay="60s", times=None)
    mark = len(emulator.received())
    generate_on(first, 0)
    time.sleep(1.1)  # the other instance reads the shared rests at most every COOLDOWN_REFRESH_SECONDS
    for n in range(1, 11):
        generate_on(second if n % 2 else first, n)
    assert resting_calls(emulator, mark) == (12, 1)
    assert 50 < client.pttl(f"gemini-proxy:cooldown:{fingerprint(KEYS[0])}:{MODEL}") <= 60_000
    for server in (first, second):
        health = requests.get(f"{server.url}/health", timeout=10).json()
        assert [c["key_id"] for c in health["cooldowns"]] == [fingerprint(KEYS[0])]


@pytest.mark.e2e
def test_workers_share_through_the_host_file_while_redis_is_unreachable(gunicorn, emulator):
    server = gunicorn(GEMINI_API_KEY=",".join(KEYS[:2]), WEB_CONCURRENCY=2,
                      COOLDOWN_STORAGE_URL=f"redis://127.0.0.1:{closed_port()}/0")
    emulator.fault(status=429, key=KEYS[0], model=MODEL, retry_delay="60s", times=None)
    connections = worker_connections(server)
    mark = len(emulator.received())
    (learner, other) = connections.values()
    assert call(learner, "POST", "/gemini/generate", {"prompt": {"text": "first"}})[0] == 200
    time.sleep(1.1)
    for n in range(5):
        for connection in (other, learner):
            assert call(connection, "POST", "/gemini/generate", {"prompt": {"text": f"q{n}"}})[0] == 200
    assert resting_calls(emulator, mark) == (12, 1)
    for connection in (learner, other):
        assert [c["key_id"] for c in call(connection, "GET", "/health")[1]["cooldowns"]] == [fingerprint(KEYS[0])]
        connection.close()
    assert "cool-down storage (Redis) unreachable" in server.output()


@pytest.mark.e2e
def test_what_a_host_learnt_while_redis_was_down_reaches_redis_when_it_answers(tmp_path, redis_server, redis_prefix):
    import redis

    clock, redis_clock = Clock(time.time()), Clock()
    down = RedisRests(f"redis://127.0.0.1:{closed_port()}/0", FileRests(str(tmp_path / "a.cooldowns")),
                      clock=redis_clock, prefix=redis_prefix)
    learner = KeyPool(KEYS[:2], clock=clock, refresh_seconds=0.0, store=down)
    learner.rest(KEYS[0], MODEL, 60.0, "quota")
    assert learner.sharing() == {"shared_by": "host", "reachable": False}
    down.redis = redis.Redis.from_url(redis_server.url)  # Redis is back
    redis_clock.now += 5.0  # and this worker tries it again
    learner.candidates(MODEL)
    assert learner.sharing() == {"shared_by": "instances", "reachable": True}
    elsewhere = KeyPool(KEYS[:2], clock=clock, refresh_seconds=0.0,
                        store=RedisRests(redis_server.url, FileRests(str(tmp_path / "b.cooldowns")),
                                         prefix=redis_prefix))
    assert elsewhere.candidates(MODEL) == [KEYS[1]]


def test_a_host_file_that_cannot_be_opened_leaves_each_worker_its_own_rests(tmp_path, caplog):
    clock = Clock()
    pool = KeyPool(KEYS[:2], clock=clock, refresh_seconds=0.0,
                   store=FileRests(str(tmp_path / "missing-dir" / "proxy.db.cooldowns")))
    with caplog.at_level(logging.WARNING, logger="proxy.upstream.keypool"):
        pool.rest(KEYS[0], MODEL, 60.0, "quota")
        for _ in range(3):
            assert pool.candidates(MODEL) == [KEYS[1]]
    assert [c.key_id for c in pool.cooldowns()] == [fingerprint(KEYS[0])]
    assert len(caplog.records) == 2  # one for the write, one for the reads: not one per attempt
    assert not (tmp_path / "missing-dir").exists()


def test_the_cooldown_settings_default_to_the_quota_redis_and_a_second():
    from config import ConfigError, load_settings

    assert load_settings({})["COOLDOWN_STORAGE_URL"] == "" and load_settings({})["COOLDOWN_REFRESH_SECONDS"] == 1.0
    quota = {"QUOTA_STORAGE_URL": "redis://quota:6379/0"}
    assert load_settings(quota)["COOLDOWN_STORAGE_URL"] == "redis://quota:6379/0"
    own = {**quota, "COOLDOWN_STORAGE_URL": "redis://cooldowns:6379/2", "COOLDOWN_REFRESH_SECONDS": "0"}
    assert load_settings(own)["COOLDOWN_STORAGE_URL"] == "redis://cooldowns:6379/2"
    assert load_settings(own)["COOLDOWN_REFRESH_SECONDS"] == 0.0
    with pytest.raises(ConfigError, match="COOLDOWN_STORAGE_URL"):
        load_settings({"COOLDOWN_STORAGE_URL": "memcached://somewhere"})
    with pytest.raises(ConfigError, match="COOLDOWN_REFRESH_SECONDS"):
        load_settings({"COOLDOWN_REFRESH_SECONDS": "-1"})

"""Daily token quotas through Gunicorn (two workers): concurrency, a locked database, and Redis across
instances cannot take a client past its quota by more than about one request's tokens."""
import os
import signal
import sqlite3
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import MODELS, rows, wait_for
from tests.processes import workers_of

CLIENT_KEY = "quota-client-key-000001"
QUOTA = 100  # about five of the emulator's answers (about 20 tokens each)
NATIVE = f"/v1beta/models/{MODELS[0]}"


def call(server, api, n):
    """One generation on `api` with the client's key; the prompt differs so nothing is cached."""
    key = {"X-API-KEY": CLIENT_KEY}
    if api == "generate":
        return requests.post(f"{server.url}/gemini/generate", json={"prompt": {"text": f"q{n}"}}, headers=key,
                             timeout=60)
    if api == "compat":
        return requests.post(f"{server.url}/gemini-proxy", json={"prompt": f"c{n}"}, headers=key, timeout=60)
    body = {"contents": [{"parts": [{"text": f"n{n}"}]}]}
    action = ":generateContent" if api == "native" else ":streamGenerateContent?alt=sse"
    return requests.post(f"{server.url}{NATIVE}{action}", json=body, headers={"x-goog-api-key": CLIENT_KEY},
                         timeout=60)


APIS = ("generate", "compat", "native", "stream")


def refused_in_its_apis_shape(response, api):
    body = response.json()
    if api == "generate":
        return body["error"]["code"] == "TOKEN_QUOTA_EXCEEDED"
    if api == "compat":
        return body["result"] == "Failed" and body["errors"][0]["code"] == "QUOTA_ERROR"
    return body["error"]["status"] == "RESOURCE_EXHAUSTED" and body["error"]["code"] == 429


def recorded(database_urls, count):
    """(total tokens, the largest request's tokens) once `count` requests are in the databases."""
    sql = "SELECT count(*), coalesce(sum(total_tokens), 0), coalesce(max(total_tokens), 0) FROM request_log " \
          "WHERE client_id IS NOT NULL"
    wait_for(lambda: sum(rows(url, sql)[0][0] for url in database_urls) == count, message=f"{count} records")
    found = [rows(url, sql)[0] for url in database_urls]
    return sum(f[1] for f in found), max(f[2] for f in found)


def concurrently(servers, count=20):
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(lambda n: (APIS[n % 4], call(servers[n % len(servers)], APIS[n % 4], n)),
                             range(count)))


def until_refused(servers, limit=12):
    """Sequential generations, alternating servers, until the first refusal; the answers."""
    answers = []
    for n in range(limit):
        answers.append(call(servers[n % len(servers)], "generate", 1000 + n))
        if answers[-1].status_code != 200:
            break
    return answers


def assert_quota_held_and_usable(servers, answers):
    """Concurrent answers were each a 200 or a quota refusal in their API's shape, the total stays
    within one request of the quota, and sequential requests then spend the rest of it, no more."""
    assert all(r.status_code in (200, 429) for _, r in answers), [r.text for _, r in answers]
    refused = [(api, r) for api, r in answers if r.status_code == 429]
    assert refused and all(refused_in_its_apis_shape(r, api) and int(r.headers["Retry-After"]) >= 1
                           for api, r in refused)
    urls = [s.database_url for s in servers]
    total, largest = recorded(urls, len(answers))
    assert 0 < total <= QUOTA + largest

    rest = until_refused(servers)
    assert rest[-1].status_code == 429 and "used up" in rest[-1].json()["error"]["message"]
    total, largest = recorded(urls, len(answers) + len(rest))
    assert QUOTA <= total <= QUOTA + largest  # spent to the quota: nothing that fitted was refused


@pytest.mark.e2e
def test_concurrent_requests_stop_at_the_quota_across_workers(gunicorn, emulator):
    server = gunicorn(API_KEYS=CLIENT_KEY, DAILY_TOKEN_QUOTA=str(QUOTA))
    emulator.configure(latency_ms=400)  # every request is in flight at once
    assert_quota_held_and_usable([server], concurrently([server]))


@pytest.mark.e2e
def test_the_quota_holds_while_the_database_is_locked(gunicorn, emulator):
    server = gunicorn(API_KEYS=CLIENT_KEY, DAILY_TOKEN_QUOTA=str(QUOTA), SQLITE_BUSY_TIMEOUT_SECONDS="0.3",
                      SPOOL_REPLAY_SECONDS="0.3")
    assert call(server, "generate", 0).status_code == 200
    recorded([server.database_url], 1)

    locker = sqlite3.connect(server.database_url.split("///", 1)[1], timeout=5)
    locker.execute("BEGIN EXCLUSIVE")  # no record reaches the database meanwhile
    try:
        statuses = [call(server, "generate", n).status_code for n in range(1, 31)]
    finally:
        locker.rollback()
        locker.close()
    admitted = statuses.count(200)
    assert statuses == [200] * admitted + [429] * (30 - admitted) and 3 <= admitted <= 6
    total, largest = recorded([server.database_url], 31)
    assert QUOTA <= total <= QUOTA + largest


@pytest.mark.e2e
def test_redis_holds_the_quota_across_instances(gunicorn, emulator, redis_server, tmp_path):
    """Two instances with databases of their own, so only Redis joins their counts."""
    import redis

    store = redis.Redis.from_url(redis_server.url)
    for key in store.scan_iter("gemini-proxy:quota:*"):
        store.delete(key)
    settings = dict(API_KEYS=CLIENT_KEY, DAILY_TOKEN_QUOTA=str(QUOTA), QUOTA_STORAGE_URL=redis_server.url)
    servers = [gunicorn(**settings), gunicorn(DATABASE_URL=f"sqlite:///{tmp_path / 'second.db'}", **settings)]
    emulator.configure(latency_ms=400)
    assert_quota_held_and_usable(servers, concurrently(servers))
    assert list(store.scan_iter("gemini-proxy:quota:*"))


@pytest.mark.e2e
def test_the_hold_of_a_request_whose_worker_died_is_released(gunicorn, emulator):
    server = gunicorn(API_KEYS=CLIENT_KEY, DAILY_TOKEN_QUOTA=str(QUOTA), QUOTA_HOLD_SECONDS="3")
    before = workers_of(server.proc.pid)
    emulator.configure(latency_ms=20_000)
    with ThreadPoolExecutor(max_workers=1) as pool:
        doomed = pool.submit(call, server, "generate", 0)  # holds the whole quota: it names no output cap
        wait_for(lambda: emulator.stats()["in_flight"] >= 1, 20, "the request at Gemini")
        emulator.configure(latency_ms=0)
        held = call(server, "generate", 1)
        assert held.status_code == 429 and "in flight" in held.json()["error"]["message"]
        for pid in before:
            os.kill(pid, signal.SIGKILL)  # its request never settles
        with pytest.raises(requests.ConnectionError):
            doomed.result()
    wait_for(lambda: len(set(workers_of(server.proc.pid)) - set(before)) == 2, 30, "Gunicorn to replace its workers")
    attempts = iter(range(2, 200))
    wait_for(lambda: call(server, "generate", next(attempts)).status_code == 200, 20,
             "the dead request's hold to expire")

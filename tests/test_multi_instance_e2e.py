"""A deployment of two instances (Gunicorn, two gevent workers each, host folders of their own) behind the
repo's nginx, on one PostgreSQL and one Redis, with the emulator as Gemini: what one instance learns or
counts holds on the other. Proved by counting: requests served and refused, calls that reached Gemini per
key, and rows in PostgreSQL, including after one instance is SIGKILLed mid-load."""
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from proxy.upstream.keypool import fingerprint
from tests import processes
from tests.conftest import KEYS, MODELS, rows, wait_for
from tests.deployment import Deployment

pytestmark = pytest.mark.e2e

ADMIN_KEY = "cluster-admin-key-0123456789"
CLIENT_CACHE_SECONDS = 2.0  # how long an instance may go on trusting what it knew of a client key
SERVER_KEYS = KEYS[:2]
MODEL = MODELS[0]
NATIVE = f"/v1beta/models/{MODEL}:generateContent"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, emulator_process):
    folder = str(tmp_path_factory.mktemp("cluster"))
    postgres = processes.Postgres().start()
    redis = processes.start_redis(folder)
    settings = dict(
        GEMINI_API_KEY=",".join(SERVER_KEYS), GEMINI_BASE_URL=emulator_process.url, GEMINI_MODELS=",".join(MODELS),
        DATABASE_URL=postgres.url.replace("+psycopg", ""),  # as an operator writes it
        RATE_LIMIT_STORAGE_URL=redis.url, QUOTA_STORAGE_URL=redis.url, COOLDOWN_STORAGE_URL=redis.url,
        CACHE_ENABLED="true", CACHE_STORAGE_URL=redis.url,
        ADMIN_API_KEY=ADMIN_KEY, REQUIRE_API_KEY="true", CLIENT_CACHE_SECONDS=CLIENT_CACHE_SECONDS,
        SPOOL_REPLAY_SECONDS="0.5", ACCESS_LOG="true", WEB_CONCURRENCY=2)
    deployment = Deployment(folder, settings)
    try:
        deployment.start()
        deployment.postgres, deployment.redis = postgres, redis
        yield deployment
    finally:
        deployment.stop()
        redis.stop()
        postgres.remove()


def new_client(server, name, **limits):
    """A client issued over /admin on `server`: (id, secret)."""
    made = requests.post(f"{server.url}/admin/clients", json={"name": name, **limits},
                         headers={"X-API-KEY": ADMIN_KEY}, timeout=30)
    assert made.status_code == 201, made.text
    return made.json()["id"], made.json()["api_key"]


def generate(server, client_key, text, request_id=None, **body):
    headers = {"X-API-KEY": client_key, "X-Request-ID": request_id or uuid.uuid4().hex}
    return requests.post(f"{server.url}/gemini/generate", json={"prompt": {"text": text}, **body}, headers=headers,
                         timeout=60)


def native(server, client_key, path, method="POST", **kwargs):
    return requests.request(method, f"{server.url}{path}", headers={"x-goog-api-key": client_key}, timeout=60,
                            **kwargs)


def recorded_once(cluster, request_ids, timeout=30.0):
    """Wait until each request is in PostgreSQL's request_log, then: once each. Its rows by request id."""
    wanted = set(request_ids)
    listed = ",".join(f"'{rid}'" for rid in wanted)
    sql = f"SELECT request_id, status_code, error_code FROM request_log WHERE request_id IN ({listed})"
    wait_for(lambda: {row[0] for row in rows(cluster.postgres.url, sql)} == wanted, timeout,
             f"the records of {len(wanted)} requests in PostgreSQL")
    found = rows(cluster.postgres.url, sql)
    assert len(found) == len(wanted)  # never twice (request_id is also unique in the schema)
    return {row[0]: row[1:] for row in found}


def served_by_each(cluster, request_ids):
    """How many of `request_ids` each instance answered (its access log); each was answered by one."""
    wait_for(lambda: sum(len(i.served(request_ids)) for i in cluster.instances) == len(request_ids), 10,
             "every access line")
    served = [instance.served(request_ids) for instance in cluster.instances]
    assert not set.intersection(*served)
    return [len(ids) for ids in served]


def generate_calls(emulator, mark):
    """The server keys of the generations that reached Gemini since `mark`."""
    return [entry["headers"].get("x-goog-api-key") for entry in emulator.received()[mark:]
            if ":generateContent" in entry["target"]]


def test_each_instance_says_it_shares_with_the_other_and_keeps_its_host_files_apart(cluster):
    for instance in cluster.instances:
        health = requests.get(f"{instance.url}/health", timeout=10).json()
        assert health["status"] == "ok" and health["database"] == {"reachable": True}, health
        assert (health["rate_limits"], health["cooldown_sharing"]) == ("instances", "instances")
        assert os.path.isdir(os.path.join(instance.instance_path, "spool"))
    paths = {os.path.realpath(instance.instance_path) for instance in cluster.instances}
    assert len(paths) == 2 and os.path.join(processes.ROOT, "instance") not in paths


def test_a_rate_limit_holds_across_both_instances(cluster, emulator):
    _, key = new_client(cluster, "rate-limited", rate_limit="10/minute")
    ids = [uuid.uuid4().hex for _ in range(30)]
    answers = [generate(cluster, key, f"r{n}", ids[n]) for n in range(30)]
    statuses = [answer.status_code for answer in answers]
    assert statuses.count(200) == 10 and statuses.count(429) == 20, statuses
    assert statuses == [200] * 10 + [429] * 20  # one after another: the first ten fit
    assert all(answer.json()["error"]["code"] == "RATE_LIMITED" for answer in answers[10:])
    assert served_by_each(cluster, ids) == [15, 15]  # nginx's round robin: the count is the two's
    assert len(generate_calls(emulator, 0)) == 10
    records = recorded_once(cluster, ids)
    assert sorted(status for status, _ in records.values()) == [200] * 10 + [429] * 20


QUOTA = 100  # tokens: about five of the emulator's answers


def test_a_token_quota_holds_across_both_instances(cluster, emulator):
    client_id, key = new_client(cluster, "quota", daily_token_quota=QUOTA)
    emulator.configure(latency_ms=400)  # so that all twenty are in flight together, on both instances
    ids = [uuid.uuid4().hex for _ in range(20)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(lambda n: generate(cluster, key, f"q{n}", ids[n]), range(20)))
    emulator.configure(latency_ms=0)
    assert {answer.status_code for answer in answers} == {200, 429}, [a.text for a in answers]
    assert all(a.json()["error"]["code"] == "TOKEN_QUOTA_EXCEEDED" for a in answers if a.status_code == 429)
    assert all(served_by_each(cluster, ids))
    recorded_once(cluster, ids)
    sql = f"SELECT coalesce(sum(total_tokens), 0), coalesce(max(total_tokens), 0) FROM request_log " \
          f"WHERE client_id = {client_id}"
    ((total, largest),) = rows(cluster.postgres.url, sql)
    assert 0 < total <= QUOTA + largest  # over by one request's overrun at most

    # What is left is spent, alternating instances, and no more: nothing that fitted was refused.
    later = []
    for n in range(12):
        later.append(generate(cluster.instances[n % 2], key, f"later {n}"))
        if later[-1].status_code != 200:
            break
    assert later[-1].status_code == 429 and "used up" in later[-1].json()["error"]["message"]
    recorded_once(cluster, ids + [answer.headers["X-Request-ID"] for answer in later])
    ((total, largest),) = rows(cluster.postgres.url, sql)
    assert QUOTA <= total <= QUOTA + largest


def test_the_response_cache_answers_on_one_instance_what_the_other_asked(cluster, emulator):
    _, key = new_client(cluster, "cached")
    first, second = cluster.instances
    mark = len(emulator.received())
    deterministic = {"generation_config": {"temperature": 0}}
    miss = generate(first, key, "the same question", **deterministic)
    assert miss.status_code == 200 and miss.headers["X-Cache"] == "MISS"
    hit = generate(second, key, "the same question", **deterministic)
    assert hit.status_code == 200 and hit.headers["X-Cache"] == "HIT" and hit.json()["text"] == miss.json()["text"]
    through_nginx = [generate(cluster, key, "the same question", **deterministic) for _ in range(4)]
    assert [answer.headers["X-Cache"] for answer in through_nginx] == ["HIT"] * 4
    assert len(generate_calls(emulator, mark)) == 1  # Gemini was asked once, by the first instance
    ids = [answer.headers["X-Request-ID"] for answer in [miss, hit, *through_nginx]]
    recorded_once(cluster, ids)
    listed = ",".join(f"'{rid}'" for rid in ids)
    assert sorted(rows(cluster.postgres.url, "SELECT cache_status, count(*) FROM request_log "
                                             f"WHERE request_id IN ({listed}) GROUP BY 1")) == [("HIT", 5), ("MISS", 1)]


def test_a_revoked_client_is_refused_by_the_other_instance_within_the_cache_time(cluster, emulator):
    first, second = cluster.instances
    client_id, key = new_client(first, "revoked")
    # Both instances now hold the key as good, in the workers that served these.
    for n in range(8):
        assert generate(cluster.instances[n % 2], key, f"before {n}").status_code == 200
    second_marker = os.path.join(second.instance_path, "clients-changed")
    before = os.stat(second_marker).st_size if os.path.exists(second_marker) else None
    revoked = requests.post(f"{first.url}/admin/clients/{client_id}/revoke", headers={"X-API-KEY": ADMIN_KEY},
                            timeout=30)
    assert revoked.status_code == 200, revoked.text
    revoked_at = time.monotonic()
    # The other host's marker did not move: what it learns, it learns from PostgreSQL.
    assert (os.stat(second_marker).st_size if os.path.exists(second_marker) else None) == before
    # On its own host, at once: every worker checks the host's marker file.
    assert [generate(first, key, f"after {n}").status_code for n in range(6)] == [401] * 6
    # The other host trusts what it knew for CLIENT_CACHE_SECONDS at most, then asks PostgreSQL.
    time.sleep(max(0.0, CLIENT_CACHE_SECONDS - (time.monotonic() - revoked_at)))
    refused = [generate(second, key, f"later {n}") for n in range(6)]
    assert [answer.status_code for answer in refused] == [401] * 6
    assert {answer.json()["error"]["code"] for answer in refused} == {"UNAUTHORIZED"}
    assert [generate(cluster, key, f"nginx {n}").status_code for n in range(4)] == [401] * 4


CACHED_TEXT = {"parts": [{"text": "A long document, cached for later turns. " * 20}], "role": "user"}


def test_a_resource_made_on_one_instance_is_its_clients_on_the_other_on_its_key(cluster, emulator):
    first, second = cluster.instances
    _, owner = new_client(cluster, "owner")
    _, stranger = new_client(cluster, "stranger")
    mark = len(emulator.received())
    made = native(first, owner, "/v1beta/cachedContents",
                  json={"model": f"models/{MODEL}", "contents": [CACHED_TEXT], "ttl": "600s"})
    assert made.status_code == 200, made.text
    name = made.json()["name"]
    (made_on,) = [e["headers"].get("x-goog-api-key") for e in emulator.received()[mark:]
                  if "cachedContents" in e["target"]]

    # The emulator keeps a cache to the key that made it, as Google keeps it to that key's project: a 200
    # is proof the other instance chose that key.
    mark = len(emulator.received())
    for n in range(4):
        read = native(second, owner, f"/v1beta/{name}", method="GET")
        assert read.status_code == 200, read.text
        used = native(second, owner, NATIVE, json={"cachedContent": name,
                                                    "contents": [{"parts": [{"text": f"turn {n}"}]}]})
        assert used.status_code == 200 and used.json()["usageMetadata"]["cachedContentTokenCount"]
    reached = [e["headers"].get("x-goog-api-key") for e in emulator.received()[mark:]]
    assert len(reached) == 8 and set(reached) == {made_on}

    mark = len(emulator.received())
    refused = [native(server, stranger, f"/v1beta/{name}", method="GET") for server in (first, second)] + \
        [native(second, stranger, NATIVE, json={"cachedContent": name, "contents": [{"parts": [{"text": "x"}]}]})]
    assert [answer.status_code for answer in refused] == [404] * 3
    assert emulator.received()[mark:] == []  # refused before any key was spent


def test_a_cool_down_learnt_on_one_instance_spares_the_other_the_call(cluster, emulator):
    first, second = cluster.instances
    _, key = new_client(cluster, "cooling")
    emulator.fault(status=429, key=SERVER_KEYS[0], model=MODEL, retry_delay="60s", times=None)
    mark = len(emulator.received())
    # Keys are taken in turn, per worker: the first instance meets the resting key within a few calls.
    for n in range(8):
        answer = generate(first, key, f"learn {n}")
        assert answer.status_code == 200 and answer.json()["model"] == MODEL  # the other key served it
        if SERVER_KEYS[0] in generate_calls(emulator, mark):
            break
    assert generate_calls(emulator, mark).count(SERVER_KEYS[0]) == 1
    time.sleep(1.1)  # the other instance's copy of the shared rests is at most COOLDOWN_REFRESH_SECONDS old
    mark = len(emulator.received())
    answers = [generate(second, key, f"other {n}") for n in range(10)] + \
        [generate(cluster, key, f"nginx {n}") for n in range(10)]
    assert [(a.status_code, a.json()["model"]) for a in answers] == [(200, MODEL)] * 20
    assert generate_calls(emulator, mark) == [SERVER_KEYS[1]] * 20  # never the resting key, from either
    for server in (first, second):
        health = requests.get(f"{server.url}/health", timeout=10).json()
        assert [(c["key_id"], c["model"]) for c in health["cooldowns"]] == [(fingerprint(SERVER_KEYS[0]), MODEL)]
        fallbacks = requests.get(f"{server.url}/analytics/fallbacks", headers={"X-API-KEY": ADMIN_KEY}, timeout=10)
        assert fallbacks.status_code == 200, fallbacks.text
        assert [(c["key_id"], c["model"]) for c in fallbacks.json()["cooldowns_now"]] == \
            [(fingerprint(SERVER_KEYS[0]), MODEL)]


def test_a_file_begun_on_one_instance_is_finished_and_read_on_the_other_by_its_client_only(cluster, emulator):
    first, second = cluster.instances
    _, owner = new_client(cluster, "uploader")
    _, stranger = new_client(cluster, "onlooker")
    content = b"tides " * 2000
    mark = len(emulator.received())
    started = requests.post(f"{first.url}/upload/v1beta/files", json={"file": {"display_name": "notes"}}, headers={
        "x-goog-api-key": owner, "X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
        "X-Goog-Upload-Header-Content-Length": str(len(content)), "X-Goog-Upload-Header-Content-Type": "text/plain"},
        timeout=30)
    assert started.status_code == 200, started.text
    upload_url = started.headers["X-Goog-Upload-URL"]
    assert upload_url.startswith(f"{first.url}/upload/")
    # Its bytes through the other instance, as a load balancer may send them.
    finished = requests.post(upload_url.replace(first.url, second.url, 1), data=content, timeout=30, headers={
        "x-goog-api-key": owner, "X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0"})
    assert finished.status_code == 200, finished.text
    name = finished.json()["file"]["name"]
    assert finished.json()["file"]["sizeBytes"] == str(len(content))

    for server in (first, second):
        read = native(server, owner, f"/v1beta/{name}", method="GET")
        assert read.status_code == 200 and read.json()["name"] == name, read.text
    used = {e["headers"].get("x-goog-api-key") for e in emulator.received()[mark:]}
    assert len(used) == 1  # one server key for its start, its bytes and every read

    mark = len(emulator.received())
    refused = [native(server, stranger, f"/v1beta/{name}", method="GET") for server in (first, second)]
    assert [answer.status_code for answer in refused] == [404, 404]
    assert emulator.received()[mark:] == []


def test_records_are_written_once_and_none_lost_when_an_instance_is_killed_mid_load(cluster, emulator):
    victim, survivor = cluster.instances
    _, key = new_client(cluster, "records")
    emulator.configure(latency_ms=2000)
    slow_ids = [uuid.uuid4().hex for _ in range(12)]
    with ThreadPoolExecutor(max_workers=12) as pool:
        slow = [pool.submit(generate, cluster, key, f"slow {n}", rid) for n, rid in enumerate(slow_ids)]
        # Every request is at Gemini, so each was admitted (and noted in its worker's in-flight file).
        wait_for(lambda: emulator.stats()["in_flight"] >= 12, 30, "12 requests at Gemini")
        victim.kill()
        outcomes = {rid: future.result().status_code for rid, future in zip(slow_ids, slow)}
    emulator.configure(latency_ms=0)
    cut = {rid for rid, status in outcomes.items() if status == 502}  # nginx's answer for a dead upstream
    assert set(outcomes.values()) == {200, 502} and len(cut) == 6, outcomes  # round robin: half on each

    # While it is down, nginx sends everything to the survivor.
    later_ids = [uuid.uuid4().hex for _ in range(10)]
    with ThreadPoolExecutor(max_workers=5) as pool:
        later = list(pool.map(lambda n: generate(cluster, key, f"later {n}", later_ids[n]), range(10)))
    assert [answer.status_code for answer in later] == [200] * 10
    answered = set(slow_ids) - cut | set(later_ids)
    recorded_once(cluster, answered)
    # The cut requests' notes are in the dead instance's own folder: no other host can replay them.
    listed = ",".join(f"'{rid}'" for rid in cut)
    assert rows(cluster.postgres.url, f"SELECT count(*) FROM request_log WHERE request_id IN ({listed})") == [(0,)]
    assert any(name.startswith("inflight-") for name in os.listdir(os.path.join(victim.instance_path, "spool")))

    # Started again on its folder, it records each request it died with, once, as WORKER_DIED.
    victim.launch().wait_ready()
    records = recorded_once(cluster, set(slow_ids) | set(later_ids))
    assert {rid: records[rid] for rid in cut} == {rid: (502, "WORKER_DIED") for rid in cut}
    assert {records[rid] for rid in answered} == {(200, None)}
    ((total, distinct),) = rows(cluster.postgres.url, "SELECT count(*), count(DISTINCT request_id) FROM request_log")
    assert total == distinct
    # And it serves again, from PostgreSQL and Redis as before.
    assert generate(victim, key, "back").status_code == 200
    assert "Traceback" not in victim.output() + survivor.output()

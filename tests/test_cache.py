"""The response cache: keys, policy, TTL, LRU, replay to both SDKs, analytics, sharing across workers."""
import copy
import json
import sqlite3
import time
import warnings

import pytest
import requests

from tests import processes
from tests.conftest import KEYS, MODELS, rows

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import google.generativeai as legacy
from google import genai
from google.genai import types

MODEL = MODELS[0]
PATH = f"/v1beta/models/{MODEL}:generateContent"
STREAM = f"/v1beta/models/{MODEL}:streamGenerateContent"
BODY = {"contents": [{"role": "user", "parts": [{"text": "What is a cache?"}]}],
        "generationConfig": {"temperature": 0, "maxOutputTokens": 200}}
CACHED = dict(CACHE_ENABLED=True, CACHE_TTL_SECONDS=3600.0, CACHE_MAX_ENTRIES=100)


@pytest.fixture
def app(make_app):
    return make_app(**CACHED)


def native(client, body=BODY, path=PATH, key=KEYS[0], **headers):
    response = client.post(path, json=body, headers={"x-goog-api-key": key, **headers})
    response.get_data()  # as a server does: the whole body is sent ...
    response.close()  # ... then the response closes, which records the exchange and keeps the answer
    return response


def upstream_calls(emulator):
    return len([r for r in emulator.requests() if r["action"] in ("generateContent", "streamGenerateContent")])


def test_identical_request_is_a_hit_whoever_pays(client, emulator):
    first = native(client)
    second = native(client, key=KEYS[1])  # another key: the answer does not depend on it
    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT")
    assert second.json["candidates"] == first.json["candidates"]
    assert second.json["usageMetadata"] == first.json["usageMetadata"]
    assert upstream_calls(emulator) == 1


VARIANTS = {
    "model": lambda b: (b, PATH.replace(MODEL, MODELS[1])),
    "contents": lambda b: ({**b, "contents": [{"role": "user", "parts": [{"text": "What is a queue?"}]}]}, PATH),
    "role history": lambda b: ({**b, "contents": [{"role": "user", "parts": [{"text": "Hi"}]},
                                                  {"role": "model", "parts": [{"text": "Hello"}]}] + b["contents"]},
                               PATH),
    "system instruction": lambda b: ({**b, "systemInstruction": {"parts": [{"text": "Be brief"}]}}, PATH),
    "generation config": lambda b: ({**b, "generationConfig": {**b["generationConfig"], "maxOutputTokens": 5}},
                                    PATH),
    "safety settings": lambda b: ({**b, "safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH",
                                                            "threshold": "BLOCK_NONE"}]}, PATH),
    "tools": lambda b: ({**b, "tools": [{"functionDeclarations": [{"name": "lookup"}]}]}, PATH),
}


@pytest.mark.parametrize("field", list(VARIANTS))
def test_a_request_differing_in_any_field_that_matters_misses(client, emulator, field):
    native(client)
    body, path = VARIANTS[field](copy.deepcopy(BODY))
    response = native(client, body=body, path=path)
    assert response.headers["X-Cache"] == "MISS" and upstream_calls(emulator) == 2


def test_snake_case_spelling_is_the_same_request(client, emulator):
    native(client)
    snake = {"contents": BODY["contents"], "generation_config": {"temperature": 0, "max_output_tokens": 200}}
    assert native(client, body=snake).headers["X-Cache"] == "HIT"


def test_only_deterministic_requests_by_default(client, emulator):
    warm = {**BODY, "generationConfig": {"temperature": 0.7}}
    native(client, body=warm)
    assert native(client, body=warm).status_code == 200 and upstream_calls(emulator) == 2
    assert "X-Cache" not in native(client, body=warm).headers
    seeded = {**BODY, "generationConfig": {"temperature": 0.7, "seed": 42}}
    native(client, body=seeded)
    assert native(client, body=seeded).headers["X-Cache"] == "HIT"


def test_the_operator_may_widen_it(make_app, emulator):
    client = make_app(**CACHED, CACHE_MODE="all").test_client()
    warm = {**BODY, "generationConfig": {"temperature": 0.7}}
    native(client, body=warm)
    assert native(client, body=warm).headers["X-Cache"] == "HIT"


def test_headers_opt_in_and_out(client, emulator):
    native(client)
    assert native(client, **{"Cache-Control": "no-cache"}).headers["X-Cache"] == "MISS"  # bypassed, refreshed
    assert upstream_calls(emulator) == 2
    assert native(client, **{"X-Proxy-Cache": "off"}).headers.get("X-Cache") is None
    other = {**BODY, "contents": [{"parts": [{"text": "not to keep"}]}]}
    native(client, body=other, **{"Cache-Control": "no-store"})
    assert native(client, body=other).headers["X-Cache"] == "MISS"  # no-store kept it out
    warm = {**BODY, "generationConfig": {"temperature": 1.0}}
    native(client, body=warm, **{"X-Proxy-Cache": "on"})
    assert native(client, body=warm, **{"X-Proxy-Cache": "on"}).headers["X-Cache"] == "HIT"


def test_ttl_expiry(app, client, emulator):
    store = app.extensions["cache"].store
    now = [1_000_000.0]
    store.clock = lambda: now[0]
    native(client)
    now[0] += 3599
    assert native(client).headers["X-Cache"] == "HIT"
    now[0] += 2
    assert native(client).headers["X-Cache"] == "MISS"


def test_size_cap_evicts_the_least_recently_used(make_app, emulator):
    app = make_app(**{**CACHED, "CACHE_MAX_ENTRIES": 2})
    client = app.test_client()
    store = app.extensions["cache"].store
    now = [1_000_000.0]
    store.clock = lambda: now[0]
    bodies = [{**BODY, "contents": [{"parts": [{"text": f"question {n}"}]}]} for n in range(3)]
    for body in bodies[:2]:
        now[0] += 1
        native(client, body=body)
    now[0] += 1
    assert native(client, body=bodies[0]).headers["X-Cache"] == "HIT"  # 0 is now the most recent
    now[0] += 1
    native(client, body=bodies[2])  # evicts 1, the least recently used
    assert native(client, body=bodies[0]).headers["X-Cache"] == "HIT"
    assert native(client, body=bodies[1]).headers["X-Cache"] == "MISS"
    assert rows(app.config["SQLALCHEMY_DATABASE_URI"], "SELECT count(*) FROM cache_entries") == [(2,)]


def test_errors_blocked_and_aborted_answers_are_never_cached(client, emulator):
    emulator.fault(status=503)
    assert native(client).status_code == 503
    assert native(client).headers["X-Cache"] == "MISS"  # the 503 was not kept; the 200 now is
    blocked = {**BODY, "contents": [{"parts": [{"text": "[[block-answer]] x"}]}]}
    native(client, body=blocked)
    assert native(client, body=blocked).headers["X-Cache"] == "MISS"
    emulator.fault(mode="cut", after_chunks=2)
    cut = {**BODY, "contents": [{"parts": [{"text": "cut me short"}]}]}
    with pytest.raises(Exception):
        native(client, body=cut, path=STREAM + "?alt=sse").get_data()
    assert native(client, body=cut).headers["X-Cache"] == "MISS"


def test_stream_and_unary_answer_each_other(client, emulator):
    streamed = client.post(STREAM + "?alt=sse", json=BODY, headers={"x-goog-api-key": KEYS[0]})
    text = "".join(json.loads(e[6:])["candidates"][0]["content"]["parts"][0]["text"]
                   for e in streamed.get_data(as_text=True).split("\r\n\r\n") if e.startswith("data: "))
    streamed.close()
    unary = native(client)
    assert unary.headers["X-Cache"] == "HIT" and unary.json["candidates"][0]["content"]["parts"][0]["text"] == text
    as_array = client.post(STREAM, json=BODY, headers={"x-goog-api-key": KEYS[0]})
    assert as_array.headers["X-Cache"] == "HIT" and json.loads(as_array.data)[0]["usageMetadata"]["totalTokenCount"] > 0
    as_array.close()
    assert upstream_calls(emulator) == 1


def test_generate_api_shares_the_cache_and_says_so(app, client, emulator):
    body = {"prompt": {"text": "What is a cache?"}, "generation_config": {"temperature": 0, "max_output_tokens": 200}}
    first = client.post("/gemini/generate", json=body)
    second = client.post("/gemini/generate", json=body)
    assert (first.json["cache"], second.json["cache"], second.headers["X-Cache"]) == ("MISS", "HIT", "HIT")
    assert second.json["text"] == first.json["text"] and second.json["metrics"] == first.json["metrics"]
    assert native(client).headers["X-Cache"] == "HIT"  # the same request spelled natively
    assert upstream_calls(emulator) == 1
    assert client.post("/gemini/generate", json={"prompt": {"text": "x"}}).json["cache"] == "OFF"


def test_hits_are_in_the_request_log_and_analytics(app, client, emulator):
    for _ in range(3):
        native(client)
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    assert rows(url, "SELECT cache_status FROM request_log ORDER BY id") == [("MISS",), ("HIT",), ("HIT",)]
    assert rows(url, "SELECT count(*) FROM metrics") == [(1,)]  # Gemini worked once
    summary = client.get("/analytics/summary").json
    (tokens,) = rows(url, "SELECT total_tokens FROM request_log WHERE cache_status = 'MISS'")[0]
    assert summary["cache"]["hits"] == 2 and summary["cache"]["lookups"] == 3
    assert summary["cache"]["hit_rate"] == pytest.approx(2 / 3)
    assert summary["cache"]["tokens_saved"] == 2 * tokens and summary["total_tokens"] == tokens
    assert summary["cache"]["cost_saved_usd"] == pytest.approx(2 * summary["cost_usd"])


def test_a_hit_is_served_while_another_process_holds_the_write_lock(make_app, emulator):
    # A short busy timeout: the records of these requests wait in the spool instead of the test.
    app = make_app(**CACHED, SQLITE_BUSY_TIMEOUT_SECONDS=1.0)
    client = app.test_client()
    assert native(client).headers["X-Cache"] == "MISS"
    locker = sqlite3.connect(app.config["SQLALCHEMY_DATABASE_URI"].split("///", 1)[1], timeout=5)
    locker.execute("BEGIN IMMEDIATE")  # say, a backup or another instance's long write
    try:
        # The hit's count waited for the lock, then failed, and the hit was thrown away for a call upstream.
        again = native(client, key=KEYS[1])
    finally:
        locker.rollback()
        locker.close()
    assert again.status_code == 200 and again.headers["X-Cache"] == "HIT"
    assert upstream_calls(emulator) == 1


def test_cache_clear_command(app, client, emulator):
    native(client)
    result = app.test_cli_runner().invoke(args=["cache", "clear"])
    assert result.exit_code == 0 and "Removed 1" in result.output
    assert native(client).headers["X-Cache"] == "MISS"


def test_cache_is_off_by_default(make_app, emulator):
    client = make_app().test_client()
    native(client)
    assert "X-Cache" not in native(client).headers and upstream_calls(emulator) == 2


@pytest.mark.e2e
@pytest.mark.parametrize("storage", ["database", "redis"])
def test_workers_and_sdks_share_the_cache(tmp_path, emulator, redis_server, storage):
    """Two Gunicorn workers share the cache; both official SDKs parse answers replayed from it."""
    server = processes.start_gunicorn(
        str(tmp_path), GEMINI_API_KEY=KEYS[0], GEMINI_BASE_URL=emulator.url, GEMINI_MODELS=",".join(MODELS),
        DATABASE_URL=f"sqlite:///{tmp_path / 'c.db'}", CACHE_ENABLED="true", WEB_CONCURRENCY=2,
        CACHE_STORAGE_URL=redis_server.url if storage == "redis" else "database")
    try:
        server.wait_ready(log_marker="Worker ready", count=2)
        if storage == "redis":
            requests.post(f"{emulator.url}/_emulator/reset", timeout=5)
        config = types.GenerateContentConfig(temperature=0, max_output_tokens=100)
        prompt = f"shared across workers via {storage}"
        options = types.HttpOptions(base_url=server.url)
        with genai.Client(api_key=KEYS[1], http_options=options) as client:
            first = client.models.generate_content(model=MODEL, contents=prompt, config=config)
            time.sleep(0.3)  # kept once the first response closes
            for _ in range(6):  # new connections: both workers answer some of these
                with genai.Client(api_key=KEYS[2], http_options=options) as fresh:
                    assert fresh.models.generate_content(model=MODEL, contents=prompt, config=config).text == first.text
            streamed = "".join(c.text for c in client.models.generate_content_stream(
                model=MODEL, contents=prompt, config=config))
        assert streamed == first.text
        legacy.configure(api_key=KEYS[0], transport="rest", client_options={"api_endpoint": server.url})
        model = legacy.GenerativeModel(MODEL, generation_config={"temperature": 0, "max_output_tokens": 100})
        chunks = list(model.generate_content(prompt, stream=True, request_options={"retry": None, "timeout": 20}))
        model._client.transport.close()  # its pooled connection would hold Gunicorn's graceful stop
        assert "".join(c.text for c in chunks) == first.text
        assert upstream_calls(emulator) == 1
    finally:
        server.stop()

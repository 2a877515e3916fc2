"""The proxy as it is deployed: Gunicorn gevent workers, the emulator, a SQLite file, real HTTP."""
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import KEYS, MODELS, native_over_http, rows, wait_for

pytestmark = pytest.mark.e2e

SPEC_BODY = {"prompt": {"text": "Tell me a joke"}, "generation_config": {"temperature": 0.7, "max_output_tokens": 100}}


def post(server, body, **kwargs):
    return requests.post(f"{server.url}/gemini/generate", json=body, timeout=60, **kwargs)


@pytest.fixture
def server(gunicorn):
    return gunicorn(ACCESS_LOG="true")


def test_spec_cases_over_http(server, emulator):
    # 1. successful generation
    response = post(server, SPEC_BODY)
    assert response.status_code == 200
    assert response.json()["text"] and response.json()["metrics"]["total_tokens"] > 0
    # 2. custom config reaches Gemini
    post(server, {"prompt": {"text": "x"}, "generation_config": {"temperature": 1.3, "max_output_tokens": 7}})
    sent = emulator.requests()[-1]["body"]["generationConfig"]
    assert sent["temperature"] == pytest.approx(1.3) and sent["maxOutputTokens"] == 7
    # 3. health
    health = requests.get(f"{server.url}/health", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    # 4. invalid request
    invalid = post(server, {"prompt": {"text": ""}})
    assert invalid.status_code == 400 and invalid.json()["error"]["code"] == "INVALID_REQUEST"
    # A model outside the chain gets the API's own error; /docs lists the chain.
    other = post(server, {"prompt": {"text": "hi"}, "model": "gemini-1.0-ultra-secret"})
    assert other.status_code == 400 and other.json()["error"]["code"] == "MODEL_NOT_ALLOWED"
    spec = requests.get(f"{server.url}/swagger.json", timeout=10).json()
    assert spec["definitions"]["GenerateRequest"]["properties"]["model"]["enum"] == MODELS
    # 5. persistence: every success has its metrics row, every request its log row (written behind)
    wait_for(lambda: rows(server.database_url, "SELECT count(*) FROM request_log") == [(4,)], message="4 rows")
    assert rows(server.database_url, "SELECT count(*) FROM metrics") == [(2,)]
    # 6. docs
    assert requests.get(f"{server.url}/docs", timeout=10).status_code == 200
    assert "/gemini/generate" in requests.get(f"{server.url}/swagger.json", timeout=10).json()["paths"]
    # The access log carries the request id.
    assert f"rid={response.headers['X-Request-ID']}" in server.output()


def test_one_gevent_worker_holds_fifty_slow_requests_in_flight(gunicorn, emulator):
    server = gunicorn(WEB_CONCURRENCY=1)
    emulator.configure(latency_ms=1000)
    with ThreadPoolExecutor(max_workers=50) as pool:
        responses = list(pool.map(lambda n: post(server, {"prompt": {"text": f"q{n}"}}), range(50)))
    assert [r.status_code for r in responses] == [200] * 50
    # All fifty were at the emulator at once: the SDK's HTTP calls yield to gevent.
    assert emulator.stats()["peak_in_flight"] == 50


def test_several_workers_write_concurrently_without_losing_a_row(gunicorn, emulator):
    server = gunicorn(WEB_CONCURRENCY=2)
    total = 200
    with ThreadPoolExecutor(max_workers=25) as pool:
        responses = list(pool.map(lambda n: post(server, {"prompt": {"text": f"row {n}"}}), range(total)))
    assert [r.status_code for r in responses] == [200] * total
    wait_for(lambda: rows(server.database_url, "SELECT count(*) FROM request_log") == [(total,)],
             message=f"{total} rows")
    assert rows(server.database_url, "SELECT count(*) FROM metrics") == [(total,)]
    assert rows(server.database_url, "SELECT count(DISTINCT request_id) FROM request_log") == [(total,)]
    output = server.output()
    assert "database is locked" not in output and "FAILED TO RECORD" not in output


def test_without_a_key_the_server_starts_and_says_so(gunicorn):
    server = gunicorn(GEMINI_API_KEY="")
    health = requests.get(f"{server.url}/health", timeout=10).json()
    assert health["status"] == "degraded" and health["api_key_configured"] is False
    response = post(server, SPEC_BODY)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "NO_API_KEY" and "GEMINI_API_KEY" in response.json()["error"]["message"]


def test_fallback_and_quota_over_http_with_a_key_pool(gunicorn, emulator):
    server = gunicorn(GEMINI_API_KEY=",".join(KEYS[:2]), WEB_CONCURRENCY=1)
    emulator.fault(status=429, model=MODELS[0], times=None)
    response = post(server, SPEC_BODY)
    assert response.status_code == 200 and response.json()["model"] == MODELS[1]
    emulator.fault(status=429, model=MODELS[1], retry_delay="9s", times=None)
    exhausted = post(server, SPEC_BODY)
    assert exhausted.status_code == 429 and exhausted.json()["error"]["code"] == "QUOTA_EXHAUSTED"
    assert 1 <= int(exhausted.headers["Retry-After"]) <= 20
    output = server.output()
    assert not any(key in output for key in KEYS)


def test_no_secret_reaches_logs_or_database(gunicorn, emulator, tmp_path):
    server = gunicorn(GEMINI_API_KEY=",".join(KEYS), LOG_LEVEL="DEBUG")
    emulator.fault(status=503, times=2)
    emulator.fault(status=429, times=1)
    for _ in range(4):
        post(server, SPEC_BODY)
    files = [path for path in tmp_path.iterdir() if path.is_file()]
    for path in files:
        data = path.read_bytes()
        assert not any(key.encode() in data for key in KEYS), path.name


def test_first_start_of_several_workers_on_a_new_database_is_clean(gunicorn, tmp_path):
    server = gunicorn(WEB_CONCURRENCY=4, DATABASE_URL=f"sqlite:///{tmp_path / 'brand-new.db'}")
    assert requests.get(f"{server.url}/health", timeout=10).json()["database"] == {"reachable": True}
    output = server.output()
    assert "Traceback" not in output and "could not create" not in output


def test_both_apis_reach_gemini_through_the_operators_http_proxy(gunicorn, emulator):
    # Gemini's address resolves nowhere: only the proxy (the emulator, standing in for one) can reach it.
    server = gunicorn(GEMINI_BASE_URL="http://gemini.invalid", HTTP_PROXY=emulator.url, WEB_CONCURRENCY=1)
    assert post(server, {"prompt": {"text": "through the proxy"}}).status_code == 200
    native = native_over_http(server, "native, through the proxy")
    assert native.status_code == 200 and native.json()["candidates"]
    (generated, forwarded) = emulator.requests()[-2:]
    assert generated["headers"]["host"] == forwarded["headers"]["host"] == "gemini.invalid"


def test_no_proxy_exempts_gemini_from_the_http_proxy(gunicorn, emulator):
    server = gunicorn(HTTP_PROXY="http://127.0.0.1:9", NO_PROXY="127.0.0.1", WEB_CONCURRENCY=1)  # 9: nothing
    assert post(server, {"prompt": {"text": "straight there"}}).status_code == 200
    native = native_over_http(server, "native, straight there")
    assert native.status_code == 200

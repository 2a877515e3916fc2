"""Gemini reached over HTTP/2, as Google's front end serves it: both APIs and a stream multiplexed over a
few TLS connections to an HTTP/2 front (nginx before the emulator), which logs each request's protocol and
connection; HTTP/1.1 when the setting says so; a graceful GOAWAY absorbed, and a stream reset mid-flight
retried by the engine."""
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests import processes
from tests.conftest import KEYS, MODELS, private_authority, rows, wait_for
from tests.conftest import generate_over_http as generate
from tests.conftest import native_over_http as native
from tests.upstream_checks import both_apis_a_stream_and_the_sdk

pytestmark = pytest.mark.e2e

MODEL = MODELS[0]
RESET_MODEL = "gemini-reset-midflight"  # the front resets every stream that calls it (RST_STREAM)


@pytest.fixture(scope="module")
def authority(tmp_path_factory):
    return private_authority(tmp_path_factory.mktemp("h2-tls"), "localhost", "127.0.0.1")


def _front(folder, **options):
    pem = str(folder / "server.pem")
    return processes.start_h2_emulator(str(folder), KEYS, (pem, pem), **options)


@pytest.fixture(scope="module")
def front(authority):
    process = _front(authority, reset_models=(RESET_MODEL,))
    yield process
    process.stop()


@pytest.fixture
def h2(front, authority):
    """The front, its emulator reset, and what it logs from now on."""
    emulator = front.emulator
    requests.post(f"{emulator.url}/_emulator/reset", json={}, timeout=10).raise_for_status()
    already = len(processes.h2_seen(front))
    front.seen = lambda: processes.h2_seen(front)[already:]
    front.configure = lambda **settings: requests.post(f"{emulator.url}/_emulator/config", json=settings,
                                                       timeout=10).raise_for_status()
    front.stats = lambda: requests.get(f"{emulator.url}/_emulator/stats", timeout=10).json()
    front.ca = str(authority / "ca.pem")
    return front


def _proxy(gunicorn, front, **settings):
    return gunicorn(GEMINI_BASE_URL=front.url, SSL_CERT_FILE=front.ca, WEB_CONCURRENCY=1, **settings)


def _concurrently(server, count, text):
    """`count` calls at once, alternating the two APIs; their status codes."""
    def one(number):
        return (generate if number % 2 else native)(server, f"{text} {number}").status_code

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def _generation_calls(seen):
    return [entry for entry in seen if ":generateContent" in entry[4] or ":streamGenerateContent" in entry[4]]


def test_both_apis_the_sdk_and_a_stream_reach_gemini_over_http2(gunicorn, h2):
    server = _proxy(gunicorn, h2)
    both_apis_a_stream_and_the_sdk(server, "HTTP/2")
    calls = _generation_calls(h2.seen())
    assert len(calls) == 4 and {protocol for _, protocol, *_ in calls} == {"HTTP/2.0"}
    assert {status for _, _, status, *_ in calls} == {"200"}
    # One worker, one connection: the four calls of both APIs went over the same one.
    assert len({connection for connection, *_ in calls}) == 1


def test_many_requests_in_flight_share_a_handful_of_connections(gunicorn, h2):
    server = _proxy(gunicorn, h2)
    h2.configure(latency_ms=5000)  # long enough that all of them are in flight at once
    count = 240
    assert _concurrently(server, count, "in flight") == [200] * count
    seen = _generation_calls(h2.seen())
    assert len(seen) == count and {protocol for _, protocol, *_ in seen} == {"HTTP/2.0"}
    # nginx allows 128 streams a connection: a handful of connections, not one per request.
    assert 2 <= len({connection for connection, *_ in seen}) <= 5
    # ...and more were at Gemini together than one connection carries: none waited for a stream.
    assert h2.stats()["peak_in_flight"] > 150


def test_a_stream_streams_over_http2(gunicorn, h2):
    server = _proxy(gunicorn, h2)
    h2.configure(stream_chunk_delay_ms=300, stream_chunk_words=2)
    with requests.post(f"{server.url}/v1beta/models/{MODEL}:streamGenerateContent?alt=sse",
                       json={"contents": [{"parts": [{"text": "stream me, one piece at a time"}]}]},
                       headers={"x-goog-api-key": KEYS[0]}, stream=True, timeout=60) as answer:
        lines = answer.iter_lines()
        first = next(line for line in lines if line.startswith(b"data:"))
        # The first event is here while Gemini is still writing the rest: it was not held back.
        assert h2.stats()["in_flight"] == 1
        rest = [line for line in lines if line.startswith(b"data:")]
    assert json.loads(first[5:])["candidates"] and len(rest) >= 2
    assert json.loads(rest[-1][5:])["candidates"][0]["finishReason"] == "STOP"
    assert _generation_calls(h2.seen())[0][1] == "HTTP/2.0"


def test_http1_when_the_setting_says_so(gunicorn, h2):
    server = _proxy(gunicorn, h2, UPSTREAM_HTTP2="false")
    assert generate(server, "over HTTP/1.1").status_code == 200
    assert native(server, "native over HTTP/1.1").status_code == 200
    calls = _generation_calls(h2.seen())
    assert len(calls) == 2 and {protocol for _, protocol, *_ in calls} == {"HTTP/1.1"}


def test_a_stream_reset_mid_flight_is_retried_then_falls_back(gunicorn, h2):
    server = _proxy(gunicorn, h2, GEMINI_MODELS=f"{RESET_MODEL},{MODEL}", RETRY_MAX_ATTEMPTS=2,
                    RETRY_INITIAL_DELAY_SECONDS=0)
    answer = generate(server, "reset, then answered")
    assert answer.status_code == 200 and answer.json()["model"] == MODEL
    attempts = [entry[4].rsplit("/", 1)[1] for entry in _generation_calls(h2.seen())]
    assert attempts == [f"{RESET_MODEL}:generateContent"] * 2 + [f"{MODEL}:generateContent"]
    wait_for(lambda: rows(server.database_url, "SELECT count(*) FROM attempts") == [(3,)], message="three attempts")
    assert rows(server.database_url, "SELECT model, outcome FROM attempts ORDER BY id") == [
        (RESET_MODEL, "transient"), (RESET_MODEL, "transient"), (MODEL, "ok")]
    # The pass-through relays what a client can act on: a JSON 502, never a 500.
    broken = native(server, "native, reset", f"/v1beta/models/{RESET_MODEL}:generateContent")
    assert broken.status_code == 502 and broken.json()["error"]["status"] == "UNAVAILABLE"
    assert "Traceback" not in server.output()


def test_a_graceful_goaway_loses_no_request(gunicorn, authority):
    # nginx ends every connection with GOAWAY after five requests: streams it refused unprocessed are sent
    # again on a new connection by the pool, on both APIs (the pass-through retries nothing itself).
    goaway = _front(authority, requests_per_connection=5)
    try:
        goaway.ca = str(authority / "ca.pem")
        server = _proxy(gunicorn, goaway)
        count = 60
        assert _concurrently(server, count, "across GOAWAY") == [200] * count
        seen = _generation_calls(processes.h2_seen(goaway))
        assert len(seen) == count and len({connection for connection, *_ in seen}) >= count // 5
        wait_for(lambda: rows(server.database_url, "SELECT count(*) FROM request_log") == [(count,)],
                 message="every record")
        assert rows(server.database_url, "SELECT outcome, count(*) FROM attempts GROUP BY outcome") == [("ok", count)]
    finally:
        goaway.stop()


def test_one_requests_timeout_cuts_off_no_other_stream_on_its_connection(gunicorn, h2):
    # Slow calls time out after 4 s of silence while others, sent 2 s later on the same connection, are
    # still waiting for answers that come at 5 s: those must arrive, not fail with the slow calls' timeout.
    server = _proxy(gunicorn, h2, UPSTREAM_TIMEOUT_SECONDS=4)
    slow, fast = MODELS[1], MODEL
    h2.configure(model_latency_ms={slow: 30000, fast: 3000})
    native(server, "a connection first")  # 3 s: the calls below share this connection

    def call(model, delay):
        time.sleep(delay)
        return native(server, f"to {model}", f"/v1beta/models/{model}:generateContent").status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        slow_calls = [pool.submit(call, slow, 0) for _ in range(10)]
        fast_calls = [pool.submit(call, fast, 2) for _ in range(10)]
        assert [future.result() for future in fast_calls] == [200] * 10
        assert [future.result() for future in slow_calls] == [504] * 10
    assert len({connection for connection, *_ in _generation_calls(h2.seen())}) == 1
    assert "Traceback" not in server.output()


def test_a_stream_its_client_leaves_is_reset_and_the_connection_serves_on(gunicorn, h2):
    server = _proxy(gunicorn, h2)
    h2.configure(stream_chunk_delay_ms=200, stream_chunk_words=1)
    for _ in range(3):
        with requests.post(f"{server.url}/v1beta/models/{MODEL}:streamGenerateContent?alt=sse",
                           json={"contents": [{"parts": [{"text": "a long answer nobody reads to its end"}]}]},
                           headers={"x-goog-api-key": KEYS[0]}, stream=True, timeout=60) as answer:
            assert next(line for line in answer.iter_lines() if line.startswith(b"data:"))
    # Gemini is told to stop writing what nobody reads any more: the front sent none of them in full.
    wait_for(lambda: h2.stats()["in_flight"] == 0, message="the abandoned streams ended at the emulator")
    assert [completion for *_, completion in _generation_calls(h2.seen())] == [""] * 3
    h2.configure(stream_chunk_delay_ms=0)
    assert _concurrently(server, 20, "after the abandoned streams") == [200] * 20
    assert len({connection for connection, *_ in _generation_calls(h2.seen())}) == 1

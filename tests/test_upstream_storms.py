"""Upstream fault storms under Gunicorn: every request ends in its documented answer, no worker dies,
and every request is recorded. Proved by counting requests sent, answers received and rows."""
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import KEYS, MODELS, generate_over_http, native_over_http, rows, wait_for
from tests.processes import workers_of

NATIVE = f"/v1beta/models/{MODELS[0]}:generateContent"
STREAM = f"/v1beta/models/{MODELS[0]}:streamGenerateContent"
PER_KIND = 6


def generate(server, n):
    response = generate_over_http(server, f"g{n}", timeout=30)
    return response.status_code, response.json()["error"]["code"] if response.status_code != 200 else None


def native(server, n):
    response = native_over_http(server, f"n{n}", NATIVE, timeout=30)
    return response.status_code, response.content


def stream(server, n):
    """(status, whether the stream ended short of its end)."""
    with requests.post(f"{server.url}{STREAM}", params={"alt": "sse"}, json={"contents": [{"parts": [
            {"text": f"s{n}"}]}]}, headers={"x-goog-api-key": KEYS[0]}, stream=True, timeout=30) as response:
        try:
            for _ in response.iter_content(chunk_size=None):
                pass
        except requests.exceptions.ChunkedEncodingError:
            return response.status_code, True
        return response.status_code, False


def storm(call, server):
    with ThreadPoolExecutor(max_workers=PER_KIND) as pool:
        return list(pool.map(lambda n: call(server, n), range(PER_KIND)))


@pytest.mark.e2e
def test_fault_storms_end_in_their_documented_answers_and_every_request_is_recorded(gunicorn, emulator):
    server = gunicorn(REQUEST_DEADLINE_SECONDS="1.2", UPSTREAM_TIMEOUT_SECONDS="0.5", RETRY_MAX_ATTEMPTS="3",
                      RETRY_INITIAL_DELAY_SECONDS="0.01", RETRY_MAX_DELAY_SECONDS="0.02")
    workers = workers_of(server.proc.pid)
    sent = 0

    def expect(fault, call, answers):
        nonlocal sent
        emulator.reset()
        emulator.fault(times=None, **fault)
        got = storm(call, server)
        sent += len(got)
        assert got == [answers] * PER_KIND, fault

    expect({"status": 503}, generate, (502, "UPSTREAM_ERROR"))
    status_of = (lambda s, n: native(s, n)[0])  # Gemini's own error, relayed unchanged (test_passthrough)
    expect({"status": 503}, status_of, 503)
    expect({"status": 429, "retry_delay": "30s"}, status_of, 429)
    expect({"mode": "malformed"}, generate, (502, "UPSTREAM_ERROR"))
    expect({"mode": "malformed"}, native, (200, b'{"candidates": [{"content": '))  # relayed as Gemini sent it
    expect({"mode": "slow", "seconds": 3}, generate, (504, "DEADLINE_EXCEEDED"))
    expect({"mode": "slow", "seconds": 3}, status_of, 504)
    expect({"mode": "cut", "after_chunks": 2}, stream, (200, True))
    expect({"mode": "stall", "after_chunks": 2}, stream, (200, True))
    # Last, as quota rests keys for a while: the pool's only key out of quota on every model.
    expect({"status": 429, "retry_delay": "30s"}, generate, (429, "QUOTA_EXHAUSTED"))

    emulator.reset()
    assert [native(server, n)[0] for n in range(4)] == [200] * 4  # the workers serve on
    sent += 4
    assert workers_of(server.proc.pid) == workers  # none died and was replaced
    wait_for(lambda: rows(server.database_url, "SELECT count(*) FROM request_log") == [(sent,)],
             message=f"a row for each of the {sent} requests")
    assert rows(server.database_url, "SELECT count(DISTINCT request_id) FROM request_log") == [(sent,)]
    assert rows(server.database_url, "SELECT count(*) FROM request_log WHERE error_code = "
                                     "'STREAM_ABORTED_UPSTREAM'") == [(2 * PER_KIND,)]
    assert rows(server.database_url, "SELECT status_code, count(*) FROM request_log GROUP BY status_code "
                                     "ORDER BY status_code") == \
        [(200, 3 * PER_KIND + 4), (429, 2 * PER_KIND), (502, 2 * PER_KIND), (503, PER_KIND), (504, 2 * PER_KIND)]
    assert "FAILED TO RECORD" not in server.output()


"""Process faults under Gunicorn: SIGTERM lets requests and streams in flight finish before exit; a worker
killed mid-request is replaced while the others keep serving. Proved by counting."""
import json
import os
import signal
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import KEYS, MODELS, generate_over_http, rows, wait_for
from tests.processes import workers_of

pytestmark = pytest.mark.e2e


def generate(server, n):
    return generate_over_http(server, f"q{n}")


def test_sigterm_lets_requests_and_streams_in_flight_finish(gunicorn, emulator):
    server = gunicorn(WEB_CONCURRENCY=1)
    emulator.configure(latency_ms=1500, stream_chunk_delay_ms=300, stream_chunk_words=3)
    events = []

    def stream():
        url = f"{server.url}/v1beta/models/{MODELS[0]}:streamGenerateContent?alt=sse"
        with requests.post(url, json={"contents": [{"parts": [{"text": "a long story"}]}]},
                           headers={"x-goog-api-key": KEYS[0]}, stream=True, timeout=60) as response:
            for line in response.iter_lines():
                if line.startswith(b"data: "):
                    events.append(json.loads(line[6:]))
        return response.status_code

    with ThreadPoolExecutor(max_workers=11) as pool:
        answers = [pool.submit(generate, server, n) for n in range(10)]
        streamed = pool.submit(stream)
        wait_for(lambda: emulator.stats()["in_flight"] >= 11, 20, "11 requests at Gemini")
        assert emulator.stats()["in_flight"] == 11  # every request is at Gemini now
        server.proc.send_signal(signal.SIGTERM)
        statuses = [answer.result().status_code for answer in answers]
        assert streamed.result() == 200
    assert statuses == [200] * 10
    assert events and events[-1]["usageMetadata"]["totalTokenCount"] > 0  # the stream ran to its end
    assert server.proc.wait(timeout=60) == 0
    assert rows(server.database_url, "SELECT count(*) FROM request_log") == [(11,)]


def test_a_worker_killed_mid_request_is_replaced_and_the_others_keep_serving(gunicorn, emulator):
    server = gunicorn(WEB_CONCURRENCY=2)
    before = workers_of(server.proc.pid)
    assert len(before) == 2
    emulator.configure(latency_ms=2000)
    with ThreadPoolExecutor(max_workers=20) as pool:
        slow = [pool.submit(generate, server, n) for n in range(20)]
        wait_for(lambda: emulator.stats()["in_flight"] >= 20, 20, "20 requests at Gemini")
        os.kill(before[0], signal.SIGKILL)
        outcomes = []
        for future in slow:
            try:
                outcomes.append(future.result().status_code)
            except requests.ConnectionError:
                outcomes.append("cut")  # the connections the killed worker held
    answered = outcomes.count(200)
    assert answered + outcomes.count("cut") == 20 and answered >= 1 and outcomes.count("cut") >= 1

    emulator.configure(latency_ms=0)
    wait_for(lambda: len(workers_of(server.proc.pid)) == 2 and before[0] not in workers_of(server.proc.pid),
             30, "Gunicorn to replace the killed worker")
    after = workers_of(server.proc.pid)
    assert len(after) == 2 and before[0] not in after and before[1] in after
    with ThreadPoolExecutor(max_workers=10) as pool:
        later = list(pool.map(lambda n: generate(server, 100 + n), range(30)))
    assert [r.status_code for r in later] == [200] * 30
    # Every answered request is recorded, once; the cut ones never got an answer.
    wait_for(lambda: rows(server.database_url, "SELECT count(*) FROM request_log") == [(answered + 30,)],
             15, "a row per answered request")
    assert rows(server.database_url, "SELECT count(*), count(DISTINCT request_id) FROM request_log") == \
        [(answered + 30, answered + 30)]

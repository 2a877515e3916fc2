"""Process faults under Gunicorn: SIGTERM lets requests and streams in flight finish before exit; a worker
killed mid-request is replaced while the others keep serving, and the requests it held are recorded by the
survivors, once each, as WORKER_DIED. Proved by counting."""
import http.client
import json
import os
import signal
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import KEYS, MODELS, generate_over_http, rows, wait_for
from tests.processes import worker_holding, workers_of

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
    server = gunicorn(WEB_CONCURRENCY=2, SPOOL_REPLAY_SECONDS="0.5")
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
    answered, cut = outcomes.count(200), outcomes.count("cut")
    assert answered + cut == 20 and answered >= 1 and cut >= 1

    emulator.configure(latency_ms=0)
    wait_for(lambda: len(workers_of(server.proc.pid)) == 2 and before[0] not in workers_of(server.proc.pid),
             30, "Gunicorn to replace the killed worker")
    after = workers_of(server.proc.pid)
    assert len(after) == 2 and before[0] not in after and before[1] in after
    with ThreadPoolExecutor(max_workers=10) as pool:
        later = list(pool.map(lambda n: generate(server, 100 + n), range(30)))
    assert [r.status_code for r in later] == [200] * 30
    # Every request is recorded, once: the cut ones by the survivors, as the requests a worker died with.
    wait_for(lambda: rows(server.database_url, "SELECT count(*) FROM request_log") == [(50,)],
             15, "a row per accepted request")
    assert rows(server.database_url, "SELECT count(*), count(DISTINCT request_id) FROM request_log") == [(50, 50)]
    assert rows(server.database_url, "SELECT status_code, error_code, route, count(*) FROM request_log "
                                     "WHERE error_code IS NOT NULL GROUP BY 1, 2, 3") == \
        [(502, "WORKER_DIED", "/gemini/generate", cut)]


CLIENT_KEY = "stream-client-key-0123456789"


def test_a_stream_whose_worker_is_killed_is_recorded_once_as_worker_died(gunicorn, emulator):
    server = gunicorn(WEB_CONCURRENCY=2, SPOOL_REPLAY_SECONDS="0.5", API_KEYS=CLIENT_KEY)
    port = int(server.url.rsplit(":", 1)[1])
    emulator.configure(latency_ms=1500, stream_chunk_delay_ms=1000, stream_chunk_words=1)

    def call(request_id, stream=False):
        action = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return requests.post(f"{server.url}/v1beta/models/{MODELS[0]}:{action}",
                             json={"contents": [{"parts": [{"text": f"question {request_id}"}]}]},
                             headers={"x-goog-api-key": CLIENT_KEY, "X-Request-ID": request_id}, timeout=60)

    with ThreadPoolExecutor(max_workers=10) as pool:
        assert [r.status_code for r in pool.map(call, [f"before-{n:04d}" for n in range(6)])] == [200] * 6
        # A long stream, already receiving Gemini's answer when its worker is killed.
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        connection.request("POST", f"/v1beta/models/{MODELS[0]}:streamGenerateContent?alt=sse",
                           body=json.dumps({"contents": [{"parts": [{"text": "a long story " * 10}]}]}),
                           headers={"Content-Type": "application/json", "x-goog-api-key": CLIENT_KEY,
                                    "X-Request-ID": "the-cut-stream"})
        streamed = connection.getresponse()
        assert streamed.status == 200
        while not streamed.readline().startswith(b"data: "):
            pass
        holder = worker_holding(connection.sock.getsockname(), port, workers_of(server.proc.pid))
        # Requests at Gemini on both workers, the killed one's among them.
        during = {f"during-{n:04d}": pool.submit(call, f"during-{n:04d}") for n in range(8)}
        wait_for(lambda: emulator.stats()["in_flight"] >= 9, 20, "9 requests at Gemini")
        os.kill(holder, signal.SIGKILL)
        with pytest.raises((http.client.HTTPException, OSError)):
            while streamed.read(1024):  # the stream ends cut, not with its last event
                pass
        connection.close()
        outcomes = {}
        for request_id, future in during.items():
            try:
                outcomes[request_id] = future.result().status_code
            except requests.ConnectionError:
                outcomes[request_id] = "cut"
    emulator.configure(latency_ms=0, stream_chunk_delay_ms=0)
    wait_for(lambda: len(workers_of(server.proc.pid)) == 2 and holder not in workers_of(server.proc.pid),
             30, "Gunicorn to replace the killed worker")
    assert [call(f"after-{n:04d}").status_code for n in range(4)] == [200] * 4

    accepted = 6 + 1 + 8 + 4
    wait_for(lambda: rows(server.database_url, "SELECT count(*) FROM request_log") == [(accepted,)],
             20, "a row per accepted request")
    assert rows(server.database_url, "SELECT count(*), count(DISTINCT request_id) FROM request_log") == \
        [(accepted, accepted)]
    (client_id,) = rows(server.database_url, "SELECT id FROM api_clients")[0]
    died = {row[0]: row[1:] for row in rows(
        server.database_url, "SELECT request_id, status_code, route, model_requested, client_id, "
                             "attempt_count FROM request_log WHERE error_code = 'WORKER_DIED'")}
    cut = {request_id for request_id, outcome in outcomes.items() if outcome == "cut"} | {"the-cut-stream"}
    assert set(died) == cut
    assert died["the-cut-stream"] == (502, "/v1beta/models/{model}:streamGenerateContent", MODELS[0], client_id, 0)
    answered = {request_id for request_id, outcome in outcomes.items() if outcome == 200}
    assert len(answered) + len(cut) - 1 == 8
    # The answered ones have their own records, whichever worker answered them.
    assert {r for (r,) in rows(server.database_url, "SELECT request_id FROM request_log WHERE status_code = 200 "
                                                    "AND error_code IS NULL")} >= answered
    assert "Traceback" not in server.output()

"""A misbehaving upstream behind the whole app, over http1pool: the client gets 502 in the API's shape for
a broken answer, the record is kept, and one client's answer never reaches another."""
import json
import logging
import time

import pytest
from flask.testing import FlaskClient
from sqlalchemy import text

from models import db
from tests.conftest import KEYS, MODELS
from tests.test_hostile_cpu_http1 import ok, upstream  # noqa: F401  (upstream: the fixture)

PATH = f"/v1beta/models/{MODELS[0]}:generateContent"
BODY = {"contents": [{"parts": [{"text": "hi"}]}]}
ANSWER = json.dumps({"candidates": [{"content": {"parts": [{"text": "mine"}], "role": "model"}}],
                     "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1,
                                       "totalTokenCount": 2}}).encode()
EVIL = json.dumps({"candidates": [{"content": {"parts": [{"text": "SMUGGLED"}], "role": "model"}}]}).encode()
JSON = b"Content-Type: application/json\r\n"


def _records(app):
    with app.app_context():
        return db.session.execute(text("SELECT status_code, error_code FROM request_log ORDER BY id")).all()


def test_bytes_past_one_answer_never_reach_the_next_client(make_app, upstream):
    server = upstream((ok(ANSWER, JSON) + ok(EVIL, JSON), False), (ok(ANSWER, JSON), True))
    app = make_app(GEMINI_BASE_URL=server.url, GEMINI_HTTP2="false")
    client = app.test_client()
    first = client.post(PATH, json=BODY)
    assert first.status_code == 200 and b"mine" in first.data
    second = app.test_client().post(PATH, json=BODY)
    assert b"SMUGGLED" not in second.data and b"mine" in second.data


BROKEN = {
    "cut-body": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"candidates\"",
    "bad-chunk": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"zz\r\n{}\r\n0\r\n\r\n",
    "huge-header": b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70000 + b"\r\nContent-Length: 2\r\n\r\n{}",
    "not-http": b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
}


@pytest.mark.parametrize("broken", BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_answer_to_generate_is_a_502_in_the_apis_shape_and_recorded(make_app, upstream, broken):
    server = upstream(*[(broken, True)] * 10)
    app = make_app(GEMINI_BASE_URL=server.url)
    answer = app.test_client().post("/gemini/generate", json={"prompt": {"text": "hi"}})
    assert answer.status_code == 502, answer.data
    assert answer.get_json()["error"]["code"] == "UPSTREAM_ERROR" or answer.get_json()["error"]["code"]
    assert [status for status, _ in _records(app)] == [502]


@pytest.mark.parametrize("broken", BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_answer_on_the_pass_through_is_a_502_or_a_cut_stream_and_recorded(make_app, upstream, broken):
    server = upstream(*[(broken, True)] * 10)
    app = make_app(GEMINI_BASE_URL=server.url)
    answer = FlaskClient(app, app.response_class).post(PATH, json=BODY)  # not conftest's, which reads it
    status = answer.status_code
    try:
        answer.get_data()
    except Exception as exc:  # the head was relayed before the body broke: the server cuts the connection
        assert type(exc).__name__ == "ProtocolError"
        status = "cut"
    finally:
        answer.close()  # as a WSGI server closes the answer whatever happened
    assert status in (502, "cut")
    assert len(_records(app)) == 1


@pytest.mark.parametrize("length", [2**40, 10**30], ids=["a-terabyte", "past-64-bits"])
def test_an_absurd_content_length_from_upstream_is_a_502(make_app, upstream, length):
    broken = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{}" % length
    server = upstream(*[(broken, True)] * 10)
    app = make_app(GEMINI_BASE_URL=server.url)
    answer = app.test_client().post("/gemini/generate", json={"prompt": {"text": "hi"}})
    assert answer.status_code == 502, answer.data
    assert _records(app)


def _stall(conn):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
    time.sleep(3)


@pytest.mark.parametrize("how", ["query", "header"])
@pytest.mark.parametrize("answer", [BROKEN["cut-body"], BROKEN["not-http"], _stall], ids=["cut", "not-http", "stall"])
def test_no_key_in_a_record_a_log_line_or_an_error_body_when_upstream_breaks(make_app, upstream, caplog, how,
                                                                             answer):
    server = upstream(*[(answer, True)] * 10)
    app = make_app(GEMINI_BASE_URL=server.url, UPSTREAM_TIMEOUT_SECONDS=1, LOG_BODY="true")
    client = FlaskClient(app, app.response_class)
    key = KEYS[0]
    path, headers = (f"{PATH}?key={key}", {}) if how == "query" else (PATH, {"x-goog-api-key": key})
    caplog.set_level(logging.DEBUG)
    reply = client.post(path, json=BODY, headers=headers)
    try:
        body = reply.get_data()
    except Exception as exc:
        body = repr(exc).encode()
    finally:
        reply.close()
    assert key.encode() not in body
    assert key not in caplog.text and key not in "".join(str(r.exc_info) for r in caplog.records)
    with app.app_context():
        for table in ("request_log", "attempts", "exchanges", "exchange_bodies"):
            for row in db.session.execute(text(f"SELECT * FROM {table}")):
                assert key not in repr(tuple(row)), (table, row)


def test_upstreams_own_request_id_and_proxy_headers_never_doubled(make_app, upstream):
    extra = JSON + (b"X-Request-ID: upstream-made-id-0001\r\nx-request-id: again-upstream-0002\r\n"
                    b"X-Accel-Buffering: yes\r\nX-Gemini-Model: forged\r\nX-Content-Type-Options: sniff\r\n")
    server = upstream((ok(ANSWER, extra), True))
    app = make_app(GEMINI_BASE_URL=server.url)
    answer = app.test_client().post(PATH, json=BODY, headers={"X-Request-ID": "client-chosen-id-01"})
    assert answer.status_code == 200
    named = {}
    for name, value in answer.headers.items():
        named.setdefault(name.lower(), []).append(value)
    assert named["x-request-id"] == ["client-chosen-id-01"]
    assert len(named.get("x-accel-buffering", [])) <= 1 and len(named.get("x-gemini-model", [])) <= 1
    assert named.get("x-gemini-model", [MODELS[0]]) != ["forged"]


@pytest.mark.e2e
def test_bytes_past_one_answer_never_reach_the_next_client_under_gunicorn(gunicorn, upstream):
    import requests

    server = upstream((ok(ANSWER, JSON) + ok(EVIL, JSON), False), (ok(ANSWER, JSON), True),
                      *[(ok(ANSWER, JSON), True)] * 4)
    proxy = gunicorn(GEMINI_BASE_URL=server.url, WEB_CONCURRENCY=1)
    first = requests.post(f"{proxy.url}{PATH}", json=BODY, timeout=30)
    assert first.status_code == 200 and "mine" in first.text
    second = requests.post(f"{proxy.url}{PATH}", json=BODY, timeout=30)
    assert "SMUGGLED" not in second.text and "mine" in second.text


@pytest.mark.parametrize("stall_after", [b"", b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{"],
                         ids=["before-the-head", "mid-body"])
def test_an_upstream_that_stalls_is_timed_out_as_on_main(make_app, upstream, stall_after):
    def stall(conn):
        conn.sendall(stall_after)
        time.sleep(2.5)

    server = upstream(*[(stall, True)] * 6)
    app = make_app(GEMINI_BASE_URL=server.url, UPSTREAM_TIMEOUT_SECONDS=0.5, RETRY_MAX_ATTEMPTS=1)
    answer = app.test_client().post("/gemini/generate", json={"prompt": {"text": "hi"}})
    error = answer.get_json()["error"]  # main's answer: each attempt timed out, then the fallback's
    assert answer.status_code == 502 and error["code"] == "UPSTREAM_ERROR"
    assert "did not answer in time" in error["message"]
    assert [status for status, _ in _records(app)] == [502]

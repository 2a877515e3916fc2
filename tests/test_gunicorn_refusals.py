"""What Gunicorn itself refuses, before the app runs, is answered in JSON with a stable status, never an
HTML page echoing the client's bytes; over raw sockets to two gevent workers."""
import pytest

from tests import rawhttp
from tests.conftest import MODELS

pytestmark = pytest.mark.e2e

SECRET = "gunicorn-refusal-secret-0123456789"
GENERATE = f"/v1beta/models/{MODELS[0]}:generateContent"
REFUSED = [
    (f"GET {GENERATE}?key={SECRET}&pad={'x' * 5000} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), 414),
    (f"GET /v1beta/models?key={SECRET} HTTP/1.1\r\nHost: x\r\nBad Header: {SECRET}\r\n\r\n".encode(), 400),
    (f"G(T /v1beta/models?key={SECRET} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), 400),
    (f"GET /v1beta/models?key={SECRET} HTTP/7.1\r\nHost: x\r\n\r\n".encode(), 400),
    (b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-Pad-%d: %s\r\n" % (i, b"y" * 100) for i in range(120))
     + b"\r\n", 431),
]


@pytest.mark.parametrize("payload,status", REFUSED, ids=["long-line", "bad-header", "bad-method", "bad-version",
                                                         "many-headers"])
def test_gunicorns_own_refusals_are_json_and_echo_nothing(gunicorn, payload, status):
    server = gunicorn()
    answer = rawhttp.exchange(server.url, payload)
    assert answer.status == status
    assert answer.headers["content-type"] == "application/json" and answer.headers["connection"] == "close"
    body = answer.json()["error"]
    assert body["code"] == status and body["status"] and body["message"]
    assert SECRET.encode() not in answer.body and b"<html" not in answer.body.lower()

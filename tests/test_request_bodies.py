"""Bodies the server cannot take, over raw sockets through Gunicorn: a clear 4xx in the API's shape, received
by the client, recorded, and never a 500, a reset or a connection held open for ever."""
import json
import threading

import pytest

from tests import rawhttp
from tests.conftest import MODELS, rows, wait_for

pytestmark = pytest.mark.e2e

GENERATE = f"/v1beta/models/{MODELS[0]}:generateContent"
CONTENTS = json.dumps({"contents": [{"parts": [{"text": "hello"}]}]}).encode()
# One path of each API, and the shape its clients read an error in.
APIS = {
    GENERATE: lambda body: body["error"]["status"],
    "/upload/v1beta/files": lambda body: body["error"]["status"],
    "/gemini/generate": lambda body: body["error"]["code"],
    "/gemini-proxy": lambda body: body["errors"][0]["code"],
}


def chunked(*pieces):
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


def test_a_malformed_chunked_body_is_a_400_in_the_shape_of_its_api(gunicorn, emulator):
    server = gunicorn()
    expected = {GENERATE: "INVALID_ARGUMENT", "/upload/v1beta/files": "INVALID_ARGUMENT",
                "/gemini/generate": "MALFORMED_BODY", "/gemini-proxy": "INVALID_REQUEST"}
    broken = [b"zz\r\nabc\r\n0\r\n\r\n",  # a chunk size that is not hexadecimal
              b"3\r\nabcdef\r\n0\r\n\r\n"]  # a chunk longer than its size says
    for path, code_of in APIS.items():
        for body in broken:
            head = rawhttp.head("POST", path, [("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")])
            answer = rawhttp.exchange(server.url, head + body)
            assert (answer.status, code_of(answer.json())) == (400, expected[path]), (path, body, answer)
            assert answer.headers["connection"] == "close"  # what follows on that connection cannot be trusted
    wait_for(lambda: rows(server.database_url, "SELECT count(*) FROM request_log WHERE status_code = 400")
             == [(len(APIS) * len(broken),)], message="every refusal recorded")
    assert emulator.stats()["total"] == 0

    # A well-formed chunked body goes through as before.
    head = rawhttp.head("POST", GENERATE, [("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")])
    assert rawhttp.exchange(server.url, head + chunked(CONTENTS[:10], CONTENTS[10:])).status == 200


def send_slowly_then_read(server, head, body, pieces, pause):
    """A client that sends its whole body, a piece at a time, before it reads the answer (as curl and most
    clients do): (whether the server took the whole body without resetting the connection, its answer)."""
    with rawhttp.connect(server.url) as sock:
        sock.sendall(head)
        size = len(body) // pieces
        stop = threading.Event()
        try:
            for start in range(0, len(body), size):
                sock.sendall(body[start:start + size])
                stop.wait(pause)
            sent = True
        except OSError:  # reset or broken pipe: most clients give up here and never see the answer
            sent = False
        return sent, rawhttp.read_answer(sock)


def test_a_body_over_the_limit_is_a_413_the_client_receives(gunicorn, emulator):
    # A short keep-alive: Gunicorn used to drop the connection that long after an early 413, body unread.
    server = gunicorn(MAX_BODY_BYTES=64 * 1024, KEEPALIVE_SECONDS=1)
    body = b"x" * (1024 * 1024)
    for path, code_of in APIS.items():
        declared = rawhttp.head("POST", path, [("Content-Type", "application/json"), ("Content-Length", len(body))])
        sent, answer = send_slowly_then_read(server, declared, body, pieces=16, pause=0.1)
        assert (sent, answer.status) == (True, 413), (path, answer)
        assert code_of(answer.json()) in ("INVALID_ARGUMENT", "PAYLOAD_TOO_LARGE", "INVALID_REQUEST")
    # Without a length, counted as it arrives.
    unsized = rawhttp.head("POST", GENERATE, [("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")])
    sent, answer = send_slowly_then_read(server, unsized, chunked(*[body[:32 * 1024]] * 32), pieces=16, pause=0.1)
    assert (sent, answer.status, answer.json()["error"]["status"]) == (True, 413, "INVALID_ARGUMENT")
    assert emulator.stats()["total"] == 0


def test_a_body_sent_too_slowly_is_a_408(gunicorn, emulator):
    server = gunicorn(BODY_READ_SECONDS=1)
    for path, code_of in APIS.items():
        with rawhttp.connect(server.url, timeout=30) as sock:
            sock.sendall(rawhttp.head("POST", path, [("Content-Type", "application/json"), ("Content-Length", 1000)]))
            stop = threading.Event()

            def drip():  # one byte every 2 s, for as long as the test waits
                while not stop.is_set():
                    try:
                        sock.sendall(b"x")
                    except OSError:
                        return
                    stop.wait(2)

            dripper = threading.Thread(target=drip, daemon=True)
            dripper.start()
            try:
                answer = rawhttp.read_answer(sock)  # a timeout here is the bug: the server waits for ever
            finally:
                stop.set()
                dripper.join()
        assert answer.status == 408, (path, answer)
        assert code_of(answer.json()) in ("DEADLINE_EXCEEDED", "REQUEST_TIMEOUT", "INVALID_REQUEST")
        assert answer.headers["connection"] == "close"
    wait_for(lambda: rows(server.database_url, "SELECT count(*) FROM request_log WHERE status_code = 408")
             == [(len(APIS),)], message="every 408 recorded")
    assert emulator.stats()["total"] == 0

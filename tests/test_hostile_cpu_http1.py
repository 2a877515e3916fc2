"""A misbehaving upstream against http1pool (the standard-library HTTP/1.1 client that replaced urllib3's
PoolManager): answers cut short, broken chunks, lengths that disagree, bytes past an answer's end, a
connection closed after a kept-alive answer. No connection is reused in a bad state and no answer of one
call is ever handed to another; each failure is urllib3's error, as before."""
import socket
import threading
import time

import pytest
import urllib3
from urllib3.exceptions import InvalidHeader, ProtocolError, ReadTimeoutError

from proxy.upstream.http1pool import Http1Pool

TIMEOUT = urllib3.Timeout(connect=5, read=2)


class Upstream:
    """A socket server answering each request it reads with the next of `answers`: (bytes, then close?).
    It reads whole requests (head and Content-Length body), so several may share a connection."""

    def __init__(self, answers):
        self.answers, self.connections, self.requests = list(answers), 0, []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        conn.settimeout(10)
        data = b""
        try:
            while True:
                while b"\r\n\r\n" not in data:
                    got = conn.recv(65536)
                    if not got:
                        return
                    data += got
                head, _, data = data.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(data) < length:
                    data += conn.recv(65536)
                self.requests.append(head.split(b"\r\n")[0].decode())
                answer, close = self.answers.pop(0) if self.answers else (b"", True)
                if callable(answer):
                    answer(conn)
                else:
                    conn.sendall(answer)
                if close:
                    time.sleep(0.2)
                    return
        except OSError:
            return
        finally:
            conn.close()

    def close(self):
        self.sock.close()


@pytest.fixture
def upstream():
    made = []

    def start(*answers):
        made.append(Upstream(answers))
        return made[-1]

    yield start
    for server in made:
        server.close()


def ok(body, extra=b""):
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


GOOD = ok(b"good")


# What a misbehaving upstream once got past the pool. --------------------------------------------------------

@pytest.mark.parametrize("first", [
    ok(b"hi") + ok(b"EVIL!"),  # a body longer than its Content-Length: another answer behind it
    b"HTTP/1.1 204 No Content\r\n\r\n" + ok(b"EVIL!"),  # a 204 with a body
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n" + ok(b"EVIL!"),
], ids=["past-content-length", "204-with-body", "past-last-chunk"])
def test_bytes_past_an_answer_are_never_the_next_calls_answer(upstream, first):
    server = upstream((first, False), (GOOD, True))
    pool = Http1Pool(4)
    pool.urlopen("GET", f"{server.url}/first", timeout=TIMEOUT).data
    second = pool.urlopen("GET", f"{server.url}/second", timeout=TIMEOUT)
    assert second.data == b"good", "the second call was answered with bytes the first call's answer left"


def test_content_lengths_that_disagree_are_refused_as_urllib3_refused_them(upstream):
    server = upstream((b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\nhiEVIL", True))
    with pytest.raises(InvalidHeader):
        Http1Pool(4).urlopen("GET", f"{server.url}/a", timeout=TIMEOUT).data


# Regressions that hold. -------------------------------------------------------------------------------------

@pytest.mark.parametrize("broken", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf",  # cut mid-body
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nhalf",  # cut mid-chunk
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhalf\r\n0\r\n\r\n",  # a bad chunk size
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-4\r\nhalf\r\n0\r\n\r\n",  # a negative one
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nhalf\r\n",  # no last chunk
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 70000 + b"\r\n",  # a size line too long
], ids=["cut-body", "cut-chunk", "bad-chunk-size", "negative-chunk", "no-last-chunk", "long-size-line"])
def test_a_broken_body_is_a_protocol_error_and_its_connection_is_never_reused(upstream, broken):
    server = upstream((broken, True), (GOOD, True))
    pool = Http1Pool(4)
    with pytest.raises(ProtocolError):
        pool.urlopen("GET", f"{server.url}/a", timeout=TIMEOUT)
    assert pool.connections() == 0
    assert pool.urlopen("GET", f"{server.url}/b", timeout=TIMEOUT).data == b"good"
    assert server.connections == 2


@pytest.mark.parametrize("broken", [
    b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70000 + b"\r\nContent-Length: 2\r\n\r\nhi",
    b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: a\r\n" % i for i in range(150)) + b"Content-Length: 2\r\n\r\nhi",
    b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nhi",
    b"SSH-2.0-OpenSSH\r\n\r\n",
], ids=["huge-header", "150-headers", "bad-status", "not-http"])
def test_a_broken_head_is_a_protocol_error(upstream, broken):
    server = upstream((broken, True))
    pool = Http1Pool(4)
    with pytest.raises(ProtocolError):
        pool.urlopen("GET", f"{server.url}/a", timeout=TIMEOUT)
    assert pool.connections() == 0


def test_a_read_timeout_mid_stream_closes_the_connection(upstream):
    def stall(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")
        time.sleep(3)

    server = upstream((stall, True), (GOOD, True))
    pool = Http1Pool(4)
    answer = pool.urlopen("GET", f"{server.url}/a", timeout=urllib3.Timeout(connect=5, read=0.5),
                          preload_content=False)
    with pytest.raises(ReadTimeoutError):
        list(answer.stream(4))
    assert pool.connections() == 0
    assert pool.urlopen("GET", f"{server.url}/b", timeout=TIMEOUT).data == b"good"


def test_an_answer_left_part_way_is_never_reused(upstream):
    server = upstream((ok(b"x" * 100_000), False), (GOOD, True))
    pool = Http1Pool(4)
    answer = pool.urlopen("GET", f"{server.url}/a", timeout=TIMEOUT, preload_content=False)
    assert len(next(answer.stream(1000))) <= 1000
    answer.release_conn()
    assert pool.connections() == 0
    assert pool.urlopen("GET", f"{server.url}/b", timeout=TIMEOUT).data == b"good"
    assert server.connections == 2


def test_a_connection_closed_after_a_kept_alive_answer_is_not_reused(upstream):
    server = upstream((ok(b"one"), True), (ok(b"two"), True))
    pool = Http1Pool(4)
    assert pool.urlopen("GET", f"{server.url}/a", timeout=TIMEOUT).data == b"one"
    time.sleep(0.5)  # the server has closed its end by now
    assert pool.urlopen("GET", f"{server.url}/b", timeout=TIMEOUT).data == b"two"
    assert server.connections == 2


def test_a_kept_alive_connection_serves_each_call_its_own_answer(upstream):
    server = upstream(*[(ok(b"n%d" % n), False) for n in range(5)])
    pool = Http1Pool(4)
    assert [pool.urlopen("GET", f"{server.url}/{n}", timeout=TIMEOUT).data for n in range(5)] == \
        [b"n%d" % n for n in range(5)]
    assert server.connections == 1


@pytest.mark.parametrize("answer,body,kept", [
    (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi", b"hi", False),  # HTTP/1.0: closes unless it says not
    (b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"hi"), b"hi", True),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n", b"hi", True),
    (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi", b"hi", False),
    (b"HTTP/1.1 200 OK\r\n\r\nto the close", b"to the close", False),
], ids=["http10", "100-continue", "length-and-chunked", "connection-close", "no-length"])
def test_odd_but_lawful_answers_are_read_and_pooled_only_when_safe(upstream, answer, body, kept):
    server = upstream((answer, True))
    pool = Http1Pool(4)
    assert pool.urlopen("GET", f"{server.url}/a", timeout=TIMEOUT).data == body
    assert pool.connections() == (1 if kept else 0)


def test_an_interim_103_is_not_the_answer(upstream):
    server = upstream((b"HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n" + ok(b"hi"), True))
    pool = Http1Pool(4)
    answer = pool.urlopen("GET", f"{server.url}/a", timeout=TIMEOUT)
    assert (answer.status, answer.data) == (200, b"hi")
    assert pool.connections() == 1  # the answer read to its end: its connection kept

"""proxy/upstream/http1pool.py against real loopback servers: the bytes urllib3 would send, answers read
as urllib3 reads them, keep-alive and its limits, timeouts and broken answers as urllib3's errors, a
chunked stream relayed chunk by chunk, and TLS verified; and the requests.Response session.py builds for the
SDK, the one requests would."""
import gzip
import pickle
import socket
import ssl
import threading
import time

import pytest
import requests
import trustme
import urllib3
from requests.cookies import RequestsCookieJar
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ProtocolError, ReadTimeoutError, SSLError

from proxy.upstream.failures import untrusted_certificate
from proxy.upstream.http1pool import Http1Pool
from proxy.upstream.session import _Answer, _case_insensitive

TIMEOUT = urllib3.Timeout(connect=5.0, read=5.0)
GZIPPED = gzip.compress(b'{"zipped": true}')
JSON = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


class Server:
    """A loopback HTTP/1.1 server: each request's head and body handed to `answer(connection, request)`,
    which writes what it likes; it counts connections and keeps every request's bytes."""

    def __init__(self, answer, context=None):
        self.answer, self.context = answer, context
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"{'https' if context else 'http'}://localhost:{self.port}"
        self.connections, self.requests, self.closed, self.held = 0, [], threading.Event(), []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            self.held.append(connection)
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection):
        try:
            if self.context:
                connection = self.context.wrap_socket(connection, server_side=True)
                self.held.append(connection)
            reader = connection.makefile("rb")
            while True:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = reader.readline()
                    if not line:
                        self.closed.set()
                        return
                    head += line
                length = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")]
                body = reader.read(length[0]) if length else b""
                while b"transfer-encoding: chunked" in head.lower() and not body.endswith(b"0\r\n\r\n"):
                    body += reader.readline()
                request = head + body
                self.requests.append(request)
                if self.answer(connection, request) is False:
                    connection.close()
                    return
        except (OSError, ssl.SSLError):
            self.closed.set()
        finally:
            connection.close()

    def stop(self):
        for held in [self.listener] + self.held:  # shut down first: it wakes a thread blocked on the socket
            try:
                held.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            held.close()


@pytest.fixture
def serve():
    servers = []

    def start(answer, context=None):
        servers.append(Server(answer, context))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def pools():
    """Pools made by a test (http1pool's, or urllib3's to compare), their connections closed after it."""
    made = []

    def make(size=4, urllib3_pool=False):
        made.append(urllib3.PoolManager(retries=False) if urllib3_pool else Http1Pool(size))
        return made[-1]

    yield make
    for pool in made:
        pool.clear()


def replying(raw):
    return lambda connection, request: connection.sendall(raw)


@pytest.mark.parametrize("method, headers, body", [
    ("POST", {"Content-Type": "application/json", "x-goog-api-key": "k"}, b'{"a": 1}'),
    ("GET", {"User-Agent": "mine", "Accept-Encoding": "gzip"}, None),
    ("POST", {}, None),
    ("DELETE", {"Host": "elsewhere.test"}, None),
    ("PUT", {"Content-Length": "3"}, b"abc"),
    ("POST", {"Transfer-Encoding": "chunked"}, b"abc"),
    ("GET", {"X-Odd": "a\r\n folded", "X-Int": 5}, None),
])
def test_a_request_goes_out_as_urllib3_sends_it(pools, serve, method, headers, body):
    server = serve(replying(JSON))
    path = "/v1beta/models/m:generateContent?%24alt=json%3Benum-encoding%3Dint&a=b c"
    pools(urllib3_pool=True).urlopen(method, server.url + path, body=body, headers=dict(headers),
                                                timeout=TIMEOUT)
    pools(4).urlopen(method, server.url + path, body=body, headers=dict(headers), timeout=TIMEOUT)
    assert server.requests[0] == server.requests[1]


@pytest.mark.parametrize("header", ["X-Bad\r\nInjected: 1", "X-Bad:"])
def test_a_header_http_client_refuses_is_refused_the_same_way(pools, serve, header):
    server = serve(replying(JSON))
    with pytest.raises(ValueError, match="Invalid header name"):
        pools(4).urlopen("GET", server.url + "/", headers={header: "v"}, timeout=TIMEOUT)
    with pytest.raises(ValueError, match="Invalid header value"):
        pools(4).urlopen("GET", server.url + "/", headers={"X-Ok": "v\r\nInjected: 1"}, timeout=TIMEOUT)
    assert server.requests == []


HEADS = [
    JSON,
    b"HTTP/1.1 503 Service Unavailable\r\nVary: Origin\r\nvary: X-Origin\r\nContent-Length: 4\r\n\r\nbusy",
    b"HTTP/1.1 200 OK\r\nX-Folded: one\r\n two\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx",
    b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nold",
    b"HTTP/1.1 200\r\nContent-Length: 1\r\n\r\ny",
    b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (len(GZIPPED), GZIPPED),
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nTrailer: t\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nto the close",
]


@pytest.mark.parametrize("raw", HEADS)
@pytest.mark.parametrize("decode", [True, False])
def test_an_answer_reads_as_urllib3_reads_it(pools, serve, raw, decode):
    server = serve(lambda connection, request: connection.sendall(raw) if b"Connection: close" not in raw
                   else (connection.sendall(raw), False)[1])
    theirs = pools(urllib3_pool=True).urlopen("GET", server.url + "/", timeout=TIMEOUT,
                                                        preload_content=False, decode_content=decode)
    ours = pools(4).urlopen("GET", server.url + "/", timeout=TIMEOUT, preload_content=False,
                                decode_content=decode)
    assert (ours.status, ours.chunked, ours.version) == (theirs.status, theirs.chunked, theirs.version)
    assert ours.plain_headers == dict(theirs.headers) and dict(ours.headers) == dict(theirs.headers)
    assert b"".join(ours.stream()) == b"".join(theirs.stream())


def test_a_connection_read_to_its_end_is_reused(pools, serve):
    server = serve(replying(JSON))
    pool = pools(4)
    for _ in range(3):
        assert pool.urlopen("POST", server.url + "/x", body=b"{}", timeout=TIMEOUT).data == b"{}"
    live = pool.urlopen("GET", server.url + "/x", timeout=TIMEOUT, preload_content=False)
    assert list(live.stream()) == [b"{}"]
    assert server.connections == 1 and pool.connections() == 1


def test_a_connection_the_server_closed_is_not_reused(pools, serve):
    server = serve(lambda connection, request: (connection.sendall(JSON), False)[1])  # then it closes
    pool = pools(4)
    assert pool.urlopen("GET", server.url + "/", timeout=TIMEOUT).data == b"{}"
    server.closed.wait(5)
    time.sleep(0.05)
    assert pool.urlopen("GET", server.url + "/", timeout=TIMEOUT).data == b"{}"
    assert server.connections == 2


def test_an_answer_left_half_way_closes_its_connection(pools, serve):
    body = b"x" * 500_000
    server = serve(replying(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)))
    pool = pools(4)
    live = pool.urlopen("GET", server.url + "/", timeout=TIMEOUT, preload_content=False)
    assert len(live.read(1000)) == 1000
    live.release_conn()
    assert server.closed.wait(5) and pool.connections() == 0
    assert pool.urlopen("GET", server.url + "/", timeout=TIMEOUT).data == body
    assert server.connections == 2 and pool.connections() == 1


def test_more_in_flight_than_the_pool_keeps_all_work_and_only_pool_size_stay(pools, serve):
    server = serve(replying(JSON))
    pool = pools(2)
    live = [pool.urlopen("GET", server.url + "/", timeout=TIMEOUT, preload_content=False) for _ in range(5)]
    assert server.connections == 5
    assert [answer.read() for answer in live] == [b"{}"] * 5
    assert pool.connections() == 2


def test_an_answer_too_slow_is_a_read_timeout_and_its_connection_is_not_kept(pools, serve):
    server = serve(lambda connection, request: time.sleep(1) or connection.sendall(JSON))
    pool = pools(4)
    with pytest.raises(ReadTimeoutError):
        pool.urlopen("GET", server.url + "/", timeout=urllib3.Timeout(connect=5.0, read=0.2))
    assert pool.connections() == 0
    assert pool.urlopen("GET", server.url + "/", timeout=TIMEOUT).data == b"{}"


def test_a_body_too_slow_is_a_read_timeout_while_streaming(pools, serve):
    def answer(connection, request):
        connection.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        time.sleep(1)

    server = serve(answer)
    live = pools(4).urlopen("GET", server.url + "/", preload_content=False,
                                timeout=urllib3.Timeout(connect=5.0, read=0.2))
    pieces = live.read_chunked()
    assert next(pieces) == b"abc"
    with pytest.raises(ReadTimeoutError):
        next(pieces)


def test_a_refused_connection_is_no_timeout_and_an_unanswered_connect_is(pools):
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(NewConnectionError):
        pools(4).urlopen("GET", f"http://127.0.0.1:{port}/", timeout=TIMEOUT)
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)  # never accepts: once its queue is full, Linux leaves the next handshakes unanswered
    waiting = []
    try:
        while len(waiting) < 8:
            waiting.append(socket.socket())
            try:
                waiting[-1].settimeout(0.3)
                waiting[-1].connect(full.getsockname())
            except TimeoutError:
                break
        with pytest.raises(ConnectTimeoutError):
            pools(4).urlopen("GET", f"http://127.0.0.1:{full.getsockname()[1]}/",
                             timeout=urllib3.Timeout(connect=0.3, read=5.0))
    finally:
        for held in waiting + [full]:
            held.close()


@pytest.mark.parametrize("raw", [
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",  # cut between chunks
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",  # cut short of its length
])
def test_an_answer_broken_off_is_a_protocol_error(pools, serve, raw):
    server = serve(lambda connection, request: (connection.sendall(raw), False)[1])
    pool = pools(4)
    live = pool.urlopen("GET", server.url + "/", timeout=TIMEOUT, preload_content=False)
    with pytest.raises(ProtocolError):
        list(live.stream())
    with pytest.raises(ProtocolError):
        pool.urlopen("GET", server.url + "/", timeout=TIMEOUT)
    assert pool.connections() == 0


def test_no_answer_at_all_is_a_protocol_error(pools, serve):
    server = serve(lambda connection, request: False)
    with pytest.raises(ProtocolError, match="aborted"):
        pools(4).urlopen("GET", server.url + "/", timeout=TIMEOUT)


def test_a_chunked_stream_arrives_chunk_by_chunk(pools, serve):
    second = threading.Event()

    def answer(connection, request):
        connection.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\ndata: 1\n\n\r\n")
        second.wait(5)
        connection.sendall(b"9\r\ndata: 2\n\n\r\n0\r\n\r\n")

    server = serve(answer)
    pool = pools(4)
    live = pool.urlopen("POST", server.url + "/s?alt=sse", body=b"{}", timeout=TIMEOUT, preload_content=False,
                        decode_content=False)
    pieces = live.read_chunked(decode_content=False)
    assert next(pieces) == b"data: 1\n\n"  # before the server has sent the second
    second.set()
    assert list(pieces) == [b"data: 2\n\n"]
    assert pool.connections() == 1  # read to its end: kept


@pytest.fixture(scope="module")
def authority():
    return trustme.CA()


def test_tls_is_verified_against_ssl_cert_file_and_an_untrusted_certificate_refused(pools, serve, authority, tmp_path,
                                                                                     monkeypatch):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    authority.issue_cert("localhost").configure_cert(context)
    server = serve(replying(JSON), context)
    with pytest.raises(SSLError) as refused:
        pools(4).urlopen("GET", server.url + "/", timeout=TIMEOUT)
    assert untrusted_certificate(refused.value) == "unable to get local issuer certificate"
    authority.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    pool = pools(4)
    assert pool.urlopen("GET", server.url + "/", timeout=TIMEOUT).data == b"{}"
    with pytest.raises(SSLError) as mismatch:  # the certificate names localhost, not 127.0.0.1
        pool.urlopen("GET", server.url.replace("localhost", "127.0.0.1") + "/", timeout=TIMEOUT)
    assert "mismatch" in untrusted_certificate(mismatch.value) or "match" in untrusted_certificate(mismatch.value)


def test_the_sdks_headers_are_requests_own():
    plain = {"Content-Type": "application/json", "Vary": "Origin, X-Origin"}
    folded = _case_insensitive(plain)
    assert folded == CaseInsensitiveDict(plain) and folded["content-type"] == "application/json"
    assert list(folded) == list(plain) and list(folded.lower_items()) == list(CaseInsensitiveDict(plain).lower_items())
    assert folded.copy() == folded and repr(folded) == repr(CaseInsensitiveDict(plain))


def test_the_sdks_response_is_the_one_requests_would_build():
    url, content = "http://gemini.test/v1beta/models/m:generateContent", b'{"error": {"code": 429}}'
    before = requests.Response()  # what session.py built before, field by field
    before.status_code, before._content, before.url, before.encoding = 429, content, url, "utf-8"
    before.headers = CaseInsensitiveDict({"Content-Type": "application/json"})
    request = requests.PreparedRequest()
    request.method, request.url = "POST", url
    before.request = request
    now = _Answer(429, content, _case_insensitive({"Content-Type": "application/json"}), url, request)
    assert isinstance(now, requests.Response)
    fields = ("_content", "status_code", "headers", "url", "history", "encoding", "reason", "elapsed", "request")
    assert {name: getattr(now, name) for name in fields} == {name: getattr(before, name) for name in fields}
    assert (now.json(), now.text, now.ok, now.content) == (before.json(), before.text, before.ok, before.content)
    assert isinstance(now.cookies, RequestsCookieJar) and len(now.cookies) == 0
    with pytest.raises(requests.HTTPError, match="429 Client Error: None for url"):
        now.raise_for_status()
    again = pickle.loads(pickle.dumps(now))
    assert (again.status_code, again.content, again.url) == (429, content, url)

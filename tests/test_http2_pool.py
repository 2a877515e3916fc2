"""proxy/upstream/h2pool.py without a server: httpcore's answers and errors read as urllib3's, a body
relayed piece by piece as it arrives, the pool chosen by the setting, and a connection counted full at
its streams."""
import ssl

import httpcore2 as httpcore
import pytest
import urllib3
from hypothesis import given
from hypothesis import strategies as st

from config import ConfigError, load_settings
from proxy.upstream import h2pool
from proxy.upstream.failures import untrusted_certificate
from proxy.upstream.http1pool import Http1Pool
from proxy.upstream.session import upstream_pool


class Pieces:
    """An httpcore response body that yields `pieces`, then raises `error` if one is given."""

    def __init__(self, pieces, error=None):
        self.pieces, self.error, self.closed = list(pieces), error, False

    def __iter__(self):
        yield from self.pieces
        if self.error is not None:
            raise self.error

    def close(self):
        self.closed = True


def answer(pieces, error=None):
    body = Pieces(pieces, error)
    response = httpcore.Response(200, headers=[(b"content-type", b"application/json")], content=body,
                                 extensions={"http_version": b"HTTP/2"})
    return h2pool.H2Response(response, "https://gemini.test/v1beta/x"), body


def test_a_stream_yields_each_piece_as_it_arrives_and_releases_its_stream():
    response, body = answer([b"data: 1\n\n", b"", b"data: 2\n\n"])
    assert response.status == 200 and response.version == 20 and response.headers["Content-Type"] == "application/json"
    assert not response.chunked
    assert list(response.stream(64 * 1024, decode_content=False)) == [b"data: 1\n\n", b"data: 2\n\n"]
    response.release_conn()
    assert body.closed


@given(st.lists(st.binary(max_size=40), max_size=8), st.integers(min_value=1, max_value=50))
def test_read_of_an_amount_then_the_rest_gives_back_the_whole_body(pieces, amount):
    response, _ = answer(pieces)
    first = response.read(amount, decode_content=False)
    assert len(first) <= amount
    assert first + b"".join(response.stream()) == b"".join(pieces)


def test_a_body_broken_off_raises_urllib3s_protocol_error_and_closes_the_stream():
    response, body = answer([b"data: 1\n\n"], httpcore.RemoteProtocolError("Server disconnected"))
    chunks = response.stream()
    assert next(chunks) == b"data: 1\n\n"
    with pytest.raises(urllib3.exceptions.ProtocolError):
        next(chunks)
    assert body.closed


@pytest.mark.parametrize("error, expected", [
    (httpcore.ConnectTimeout("slow"), urllib3.exceptions.ConnectTimeoutError),
    (httpcore.PoolTimeout("full"), urllib3.exceptions.ConnectTimeoutError),
    (httpcore.ReadTimeout("slow"), urllib3.exceptions.ReadTimeoutError),
    (httpcore.ConnectError("refused"), urllib3.exceptions.NewConnectionError),
    (httpcore.ProxyError("407"), urllib3.exceptions.ProxyError),
    (httpcore.RemoteProtocolError("GOAWAY"), urllib3.exceptions.ProtocolError),
    (httpcore.ReadError("reset"), urllib3.exceptions.ProtocolError),
])
def test_httpcores_errors_read_as_urllib3s(error, expected):
    assert isinstance(h2pool._as_urllib3(error, "https://gemini.test/"), expected)


def test_a_refused_certificate_still_reads_as_untrusted():
    verification = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    try:
        try:
            raise verification
        except ssl.SSLError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
    except httpcore.ConnectError as connect:
        mapped = h2pool._as_urllib3(connect, "https://gemini.test/")
    assert isinstance(mapped, urllib3.exceptions.SSLError)
    assert untrusted_certificate(mapped) == "certificate verify failed"
    # A connection refused is not a certificate problem.
    assert untrusted_certificate(h2pool._as_urllib3(httpcore.ConnectError("refused"), "https://gemini.test/")) is None


def test_requests_carry_host_and_length_as_urllib3_would():
    framed = h2pool._framed("https://gemini.test:8443/v1beta/models", {"x-goog-api-key": "k"}, b"{}")
    assert framed[0] == ("Host", "gemini.test:8443") and ("Content-Length", "2") in framed
    assert h2pool._framed("https://gemini.test/x", {"host": "elsewhere"}, None) == [("host", "elsewhere")]


def test_the_setting_chooses_the_pool():
    assert isinstance(upstream_pool("https://gemini.test", 10, http2=True), h2pool.H2Pool)
    assert isinstance(upstream_pool("https://gemini.test", 10, http2=False), Http1Pool)
    assert isinstance(upstream_pool("http://127.0.0.1:8090", 10, http2=True), Http1Pool)  # no h2c


def test_upstream_http2_is_on_by_default_and_validated():
    assert load_settings({})["UPSTREAM_HTTP2"] is True
    assert load_settings({"UPSTREAM_HTTP2": "false"})["UPSTREAM_HTTP2"] is False
    with pytest.raises(ConfigError, match="UPSTREAM_HTTP2"):
        load_settings({"UPSTREAM_HTTP2": "h2c"})


class Connection:
    """Stands for httpcore's HTTPConnection: available, with `protocol` once connected."""

    def __init__(self, protocol=None):
        self._connection = protocol

    def is_available(self):
        return True

    def handle_request(self, request):
        return httpcore.Response(200, content=Pieces([b"{}"]))


def test_a_connection_is_full_at_its_streams_and_free_again_as_they_end():
    capped = h2pool._Capped(Connection())  # still connecting: assumed HTTP/2, with Google's 100 streams
    answers = [capped.handle_request(None) for _ in range(h2pool._ASSUMED_STREAMS)]
    assert not capped.is_available()
    answers[0].stream.close()
    answers[0].stream.close()  # closed twice, counted once
    assert capped.is_available() and capped.active == h2pool._ASSUMED_STREAMS - 1


def test_an_http11_connection_is_left_to_httpcores_own_count():
    capped = h2pool._Capped(Connection(protocol=object()))  # ALPN chose HTTP/1.1
    capped.active = 500
    assert capped.is_available()

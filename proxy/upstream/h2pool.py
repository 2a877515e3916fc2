"""HTTP/2 to Gemini, behind the small part of urllib3's PoolManager interface the two APIs use.

httpcore2 (the maintained httpcore, under httpx2; the SDKs in this venv already bring it) with h2 sends
every request of a worker over a few TLS connections, as many streams at once as the server allows;
its sync sockets and locks are the standard library's, which gevent patches, so each greenlet blocks
only itself. It speaks HTTP/1.1 to a server whose ALPN offers no h2. Answers and errors come back as
urllib3's (a response with stream/read/release_conn, urllib3's exception types), so the transports, the
pass-through's relay and their error handling stay the same whichever pool serves them. Where httpcore
falls short of sharing a connection between independent requests (GOAWAY, timeouts, abandoned streams,
stream limits), h2connection.py and _Capped below make up for it."""
import ssl

import httpcore2 as httpcore
import urllib3
from httpcore2._sync.http2 import HTTP2Connection

from . import h2connection  # noqa: F401  (httpcore's HTTP/2 connections, made fit to share)

# Streams a connection is given before the server's SETTINGS say how many it allows: Google's front end
# allows 100, and RFC 9113 asks servers to allow at least that.
_ASSUMED_STREAMS = 100
_UNSET = 2**31  # h2's max_concurrent_streams until the server has sent one is unbounded
# A connection idle this long is closed rather than reused (seconds): before the server's own idle close,
# which could cross a request sent on it.
_IDLE_SECONDS = 60.0

# httpcore's errors as urllib3's, so a caller's `except urllib3.exceptions...` reads both pools alike.
_TIMEOUTS = (httpcore.ConnectTimeout, httpcore.PoolTimeout)


def _as_urllib3(exc, url):
    if isinstance(exc, _TIMEOUTS):
        return urllib3.exceptions.ConnectTimeoutError(None, f"{type(exc).__name__}: {exc}")
    if isinstance(exc, (httpcore.ReadTimeout, httpcore.WriteTimeout)):
        return urllib3.exceptions.ReadTimeoutError(None, url, f"{type(exc).__name__}: {exc}")
    if isinstance(exc, httpcore.ProxyError):
        return urllib3.exceptions.ProxyError(str(exc), exc)
    if isinstance(exc, httpcore.ConnectError):
        if isinstance(exc.__cause__ or exc.__context__, ssl.SSLError):
            return urllib3.exceptions.SSLError(exc.__cause__ or exc.__context__)
        return urllib3.exceptions.NewConnectionError(None, f"{type(exc).__name__}: {exc}")
    if isinstance(exc, httpcore.UnsupportedProtocol):
        return urllib3.exceptions.LocationParseError(url)
    return urllib3.exceptions.ProtocolError(f"{type(exc).__name__}: {exc}", exc)


def _framed(url, headers, body):
    """The request's headers with the Host (HTTP/2's :authority) and Content-Length that urllib3 would add."""
    pairs = list((headers or {}).items())
    names = {name.lower() for name, _ in pairs}
    if "host" not in names:
        pairs.insert(0, ("Host", url.split("/", 3)[2]))  # scheme://host[:port]/...
    if body and "content-length" not in names and "transfer-encoding" not in names:
        pairs.append(("Content-Length", str(len(body))))
    return pairs


class H2Response:
    """A live answer read as urllib3's HTTPResponse is (preload_content=False, decode_content=False)."""

    chunked = False  # HTTP/2 has frames, not chunks: stream() yields each as it arrives

    def __init__(self, response, url):
        self.status = response.status
        self.headers = urllib3.HTTPHeaderDict([(name.decode("latin-1"), value.decode("latin-1"))
                                               for name, value in response.headers])
        self.version = 20 if response.extensions.get("http_version") == b"HTTP/2" else 11
        self._response, self._chunks, self._url = response, iter(response.stream), url
        self._left = b""  # read past what read(amt) asked for
        self._done = False
        self._whole = None

    def _next(self):
        try:
            return next(self._chunks)
        except StopIteration:
            self._done = True
            return b""
        except Exception as exc:  # noqa: BLE001 - every httpcore error, as urllib3 would name it
            self.close()
            raise _as_urllib3(exc, self._url) from exc

    def stream(self, amt=None, decode_content=False):
        """Each piece of the body as it arrives (never held back to fill `amt`: a stream's first event
        goes on at once)."""
        if self._left:
            chunk, self._left = self._left, b""
            yield chunk
        while not self._done:
            chunk = self._next()
            if chunk:
                yield chunk

    read_chunked = stream

    def read(self, amt=None, decode_content=False):
        pieces, size = [self._left], len(self._left)
        while not self._done and (amt is None or size < amt):
            chunk = self._next()
            pieces.append(chunk)
            size += len(chunk)
        data = b"".join(pieces)
        if amt is not None:
            data, self._left = data[:amt], data[amt:]
        else:
            self._left = b""
        return data

    @property
    def data(self):
        """The whole body, read once."""
        if self._whole is None:
            self._whole = self.read()
        return self._whole

    def release_conn(self):
        self._response.close()  # the stream ends; its connection serves the others on

    close = release_conn


def _streams(connection):
    """How many requests `connection` may carry at once: the server's max_concurrent_streams over HTTP/2;
    None when ALPN chose HTTP/1.1 (httpcore's own availability says)."""
    protocol = getattr(connection, "_connection", None)  # httpcore's HTTPConnection / TunnelHTTPConnection
    if protocol is None:
        return _ASSUMED_STREAMS  # still connecting: over TLS with h2 on, most likely HTTP/2
    if not isinstance(protocol, HTTP2Connection):
        return None
    allowed = protocol._h2_state.remote_settings.max_concurrent_streams
    # httpcore opens no more streams than its own SETTINGS offer the server (100), whatever the server allows.
    return min(allowed if allowed < _UNSET else _ASSUMED_STREAMS,
               protocol._h2_state.local_settings.max_concurrent_streams)


class _Counted:
    """A response body that tells its connection when it is done."""

    def __init__(self, stream, connection):
        self.stream, self.connection, self.open = stream, connection, True

    def __iter__(self):
        return iter(self.stream)

    def close(self):
        if self.open:
            self.open = False
            self.connection.active -= 1
        self.stream.close()


class _Capped:
    """One of the pool's connections, full once its requests fill the streams the server allows.

    httpcore counts an HTTP/2 connection available however many streams it carries, and queues the
    surplus behind its stream semaphore: 500 requests in flight would wait on one connection's 100
    streams. Counted here, the pool opens the next connection instead."""

    def __init__(self, connection):
        self.inner, self.active = connection, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def is_available(self):
        if not self.inner.is_available():
            return False
        allowed = _streams(self.inner)
        return allowed is None or self.active < allowed

    def handle_request(self, request):
        self.active += 1
        try:
            response = self.inner.handle_request(request)
        except BaseException:
            self.active -= 1
            raise
        response.stream = _Counted(response.stream, self)
        return response

    def __repr__(self):
        return f"<capped {self.inner!r}, {self.active} active>"


class _Pool(httpcore.ConnectionPool):
    def create_connection(self, origin):
        return _Capped(super().create_connection(origin))


class _ProxiedPool(httpcore.HTTPProxy):
    def create_connection(self, origin):
        return _Capped(super().create_connection(origin))


class H2Pool:
    """Requests to one origin over HTTP/2 (HTTP/1.1 where ALPN says so), through an egress proxy's CONNECT
    tunnel when one is set; no retries of its own, except a request the server refused unprocessed
    (a graceful GOAWAY's later streams), which httpcore sends again on a fresh connection."""

    def __init__(self, proxy, pool_size, keepalive_seconds=_IDLE_SECONDS):
        # The system's authorities, or SSL_CERT_FILE / SSL_CERT_DIR when set, as urllib3 reads them.
        context = ssl.create_default_context()
        options = dict(ssl_context=context, max_connections=pool_size, max_keepalive_connections=pool_size,
                       keepalive_expiry=keepalive_seconds, http1=True, http2=True, retries=0)
        self.pool = _ProxiedPool(proxy_url=proxy, **options) if proxy else _Pool(**options)

    def urlopen(self, method, url, body=None, headers=None, timeout=None, **unused):
        """The answer's headers, its body left to read (the pass-through's urlopen(preload_content=False))."""
        connect, read = (timeout.connect_timeout, timeout.read_timeout) if timeout is not None else (None, None)
        request = httpcore.Request(method, url, headers=_framed(url, headers, body), content=body or b"",
                                   extensions={"timeout": {"connect": connect, "pool": connect,
                                                           "read": read, "write": read}})
        try:
            response = self.pool.handle_request(request)
        except Exception as exc:  # noqa: BLE001 - every httpcore error, as urllib3 would name it
            raise _as_urllib3(exc, url) from exc
        return H2Response(response, url)

    def request(self, method, url, body=None, headers=None, timeout=None, **unused):
        """The answer read whole (the SDK's calls)."""
        response = self.urlopen(method, url, body=body, headers=headers, timeout=timeout)
        try:
            response.data
        finally:
            response.release_conn()
        return response

    def connections(self):
        """How many connections are open (the benchmark's and the tests' count)."""
        return len(self.pool.connections)

"""HTTP/1.1 to Gemini over the standard library's sockets and TLS, behind the part of urllib3's
PoolManager interface the two APIs use (urlopen/request, answers as urllib3's, urllib3's errors).

Why not urllib3 itself: a warm call through its PoolManager costs about 470 Python calls (URL parsing
twice, Timeout objects cloned, the head written through http.client's putheader and read through the
email parser, HTTPHeaderDicts built and copied, its response wrapper); this pool does the same work in
about 60, keeping what the callers rely on: keep-alive, a connection the server closed never reused
(urllib3's is_connection_dropped), a connection left part-way closed, up to `pool_size` kept idle while
any number may be in flight (urllib3's block=False), per-call connect and read timeouts, TLS verified
against SSL_CERT_FILE or the system's store with SNI and the host name checked, and urllib3's errors
for each failure. Its sockets are the standard library's, which gevent patches, so each greenlet
blocks only itself. The operator's egress proxy stays with urllib3's ProxyManager (session.py)."""
import errno
import http.client
import socket
import ssl
import threading

from gevent.monkey import get_original
from urllib3.exceptions import (
    ConnectTimeoutError, NameResolutionError, NewConnectionError, ProtocolError, ReadTimeoutError, SSLError,
)
from urllib3.util import Timeout

from .http1response import Http1Response
from .http1wire import read_head, request_head, route

# A connection is dropped when its socket reads ready while idle (its close, or bytes nobody asked for).
# The unpatched poll: asked never to wait, it cannot block the hub.
_poll = get_original("select", "poll")
_POLLIN = get_original("select", "POLLIN")
_ORIGINS = 4  # hosts whose idle connections are kept, as urllib3's num_pools
_SENT_ANYWAY = (errno.EPIPE, errno.ECONNRESET, errno.EPROTOTYPE)  # the answer may still be there to read
_DEFAULT = Timeout.DEFAULT_TIMEOUT


class _Connection:
    __slots__ = ("origin", "sock", "reader", "timeout")

    def __init__(self, origin, sock, timeout):
        self.origin, self.sock, self.timeout = origin, sock, timeout
        self.reader = sock.makefile("rb")

    def settimeout(self, seconds):
        if seconds != self.timeout:
            self.sock.settimeout(seconds)
            self.timeout = seconds

    def dropped(self):
        poller = _poll()
        poller.register(self.sock, _POLLIN)
        return bool(poller.poll(0))

    def fresh_reader(self):
        """A new reader for the next answer: bytes the last one's buffer holds past its end (a server's
        mistake, or an answer smuggled after it) are dropped with it, never read as the next answer's
        (http.client's way: a reader per answer). Bytes still in the socket make it read ready: dropped()."""
        self.reader.close()
        self.reader = self.sock.makefile("rb")

    def close(self):
        self.reader.close()
        self.sock.close()


class Http1Pool:
    """Keep-alive connections to each origin; no retries of its own (the callers retry)."""

    def __init__(self, pool_size):
        self.pool_size = pool_size
        self._idle = {}  # origin -> its idle connections, the most recently used last
        self._context = None
        self._lock = threading.Lock()

    def urlopen(self, method, url, body=None, headers=None, timeout=None, preload_content=True,
                decode_content=True, **unused):
        """The answer to one call; its body read whole unless preload_content is False."""
        origin, line, host = route(method, url)
        message = request_head(line, host, method, headers, body)
        connect, read = (timeout.connect_timeout, timeout.read_timeout) if timeout is not None else (None, None)
        connect = socket.getdefaulttimeout() if connect is _DEFAULT else connect
        read = socket.getdefaulttimeout() if read is _DEFAULT else read
        connection = self._idle_connection(origin) or self._connect(origin, connect, url)
        try:
            self._send(connection, message, connect)
            if read == 0:
                raise ReadTimeoutError(self, url, f"Read timed out. (read timeout={read})")
            connection.settimeout(read)
            response = Http1Response(self, connection, read_head(connection.reader, method), method, decode_content)
        except BaseException as exc:
            connection.close()  # whatever went wrong, never reused
            error = _unanswered(exc, self, url, read)
            if error is exc:
                raise
            raise error from exc
        if preload_content:
            response._body = response.read()
        return response

    request = urlopen  # urllib3's request() only shapes fields and headers the callers never pass

    def put(self, connection):
        """A connection whose answer has been read to its end, kept for the next call (up to pool_size)."""
        connection.fresh_reader()
        idle = self._idle.get(connection.origin)
        if idle is None:
            idle = self._origin(connection.origin)
        if len(idle) < self.pool_size:
            idle.append(connection)
        else:
            connection.close()

    def clear(self):
        """Close every idle connection (urllib3's PoolManager.clear)."""
        with self._lock:
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()

    def connections(self):
        """How many connections are idle (the tests' count)."""
        return sum(len(idle) for idle in self._idle.values())

    def _idle_connection(self, origin):
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            if not connection.dropped():
                return connection
            connection.close()
        return None

    def _origin(self, origin):
        with self._lock:
            while len(self._idle) >= _ORIGINS:  # the least recently added host's connections go
                for connection in self._idle.pop(next(iter(self._idle))):
                    connection.close()
            return self._idle.setdefault(origin, [])

    def _connect(self, origin, timeout, url):
        scheme, host, port = origin
        try:
            sock = socket.create_connection((host, port), timeout)
        except socket.gaierror as exc:
            raise NameResolutionError(host, None, exc) from exc
        except TimeoutError as exc:
            raise ConnectTimeoutError(None, f"Connection to {host} timed out. (connect timeout={timeout})") from exc
        except OSError as exc:
            raise NewConnectionError(None, f"Failed to establish a new connection: {exc}") from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # urllib3's socket option
            if scheme == "https":
                sock = self._tls().wrap_socket(sock, server_hostname=host.rstrip("."))
        except BaseException as exc:
            sock.close()
            if isinstance(exc, TimeoutError):  # the handshake's, under the connect timeout, as urllib3 names it
                raise ReadTimeoutError(self, url, f"Read timed out. (read timeout={timeout})") from exc
            error = _unanswered(exc, self, url, timeout)
            if error is exc:
                raise
            raise error from exc
        return _Connection(origin, sock, timeout)

    def _tls(self):
        """The system's authorities, or SSL_CERT_FILE / SSL_CERT_DIR when set, as urllib3 reads them."""
        if self._context is None:
            context = ssl.create_default_context()  # verified, the host name checked, TLS 1.2 or later
            context.set_alpn_protocols(["http/1.1"])
            context.options |= ssl.OP_NO_TICKET
            context.post_handshake_auth = True
            self._context = context
        return self._context

    @staticmethod
    def _send(connection, message, timeout):
        connection.settimeout(timeout)  # urllib3 sends under the connect timeout, then reads under the read
        try:
            connection.sock.sendall(message)
        except BrokenPipeError:
            pass  # a server may answer, then close before reading all of the request
        except ssl.SSLError:
            raise
        except OSError as exc:  # a timeout too: urllib3 does not count a request it could not send as one
            if exc.errno not in _SENT_ANYWAY:
                raise ProtocolError("Connection aborted.", exc) from exc


def _unanswered(exc, pool, url, timeout):
    """urllib3's error for a call that got no answer's head (its HTTPConnectionPool.urlopen)."""
    if isinstance(exc, TimeoutError) or getattr(exc, "errno", None) in (errno.EAGAIN, errno.EWOULDBLOCK):
        if not isinstance(exc, ssl.SSLError) or "timed out" in str(exc):
            return ReadTimeoutError(pool, url, f"Read timed out. (read timeout={timeout})")
    if isinstance(exc, (ssl.SSLError, ssl.CertificateError)):
        return SSLError(exc)
    if isinstance(exc, (OSError, http.client.HTTPException)):
        return ProtocolError("Connection aborted.", exc)
    return exc

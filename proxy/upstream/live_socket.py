"""The Live API's upstream leg: a WebSocket to GEMINI_BASE_URL's Live endpoint, opened with one key.

simple-websocket (the library flask-sock serves the client's leg with) is the client too: one WebSocket
implementation both ways, plain sockets and threads that gevent's patching turns into greenlets, and
wsproto underneath, which checks the framing of what Gemini sends."""
import socket
import ssl
from urllib.parse import urlencode, urlsplit

import simple_websocket
from wsproto import ConnectionType

from ..wire.live import MAX_FRAME


class Unreachable(Exception):
    """The Live endpoint did not take the connection: `status` is the HTTP answer to the upgrade, if any."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


def live_url(base_url, path, query=None):
    """ws(s):// for the http(s):// base URL, with the endpoint's path (and a query, for a token)."""
    parts = urlsplit(base_url.rstrip("/"))
    scheme = "wss" if parts.scheme == "https" else "ws"
    tail = f"?{urlencode(query)}" if query else ""
    return f"{scheme}://{parts.netloc}{parts.path}{path}{tail}"


class _Upstream(simple_websocket.Client):
    """simple-websocket's client over a socket opened here, so that connecting and the upgrade are bounded
    by a timeout of this socket's own (its Client takes none; setting the default would change every socket's)."""

    def __init__(self, url, sock, headers):  # noqa: the parent's own __init__ opens a socket of its own
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        self.path = parts.path + (f"?{parts.query}" if parts.query else "")
        self.subprotocols = []
        self.extra_headeers = list(headers.items())  # (sic) the attribute simple-websocket's handshake reads
        simple_websocket.ws.Base.__init__(self, sock, connection_type=ConnectionType.CLIENT,
                                          max_message_size=MAX_FRAME)

    def handshake(self):
        super().handshake()
        self.sock.settimeout(None)  # before the reader starts: a session waits as long as its turns take


def connect(url, headers, timeout):
    """A connected client socket; Unreachable if the upgrade fails or takes longer than `timeout` seconds."""
    parts = urlsplit(url)
    secure = parts.scheme == "wss"
    sock = None
    try:
        sock = socket.create_connection((parts.hostname, parts.port or (443 if secure else 80)), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a turn's first message is small
        if secure:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=parts.hostname)  # SSL_CERT_FILE
        upstream = _Upstream(url, sock, headers)
    except simple_websocket.ConnectionError as exc:
        _close(sock)
        raise Unreachable("Gemini's Live endpoint refused the connection.", exc.status_code) from None
    except (OSError, ssl.SSLError) as exc:
        _close(sock)
        raise Unreachable(f"Gemini's Live endpoint is unreachable: {type(exc).__name__}.") from None
    return upstream


def _close(sock):
    if sock is not None:
        try:
            sock.close()
        except OSError:
            pass

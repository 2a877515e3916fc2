"""Raw HTTP/1.1 over a socket, for the requests no HTTP library sends: broken framing, slow or huge bodies."""
import json
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class Answer:
    status: int
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)


def connect(url, timeout=30.0):
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=timeout)


def head(method, target, headers=(), host="127.0.0.1"):
    """The request line and headers, ready to send; `headers` are (name, value) pairs."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", *(f"{name}: {value}" for name, value in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def read_answer(sock):
    """The first response on `sock`: status, headers (lower-cased names) and the body its length gives."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed before a full response head: {data!r}")
        data += chunk
    top, _, rest = data.partition(b"\r\n\r\n")
    status_line, *lines = top.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return Answer(int(status_line.split()[1]), headers, rest[:length])


def exchange(url, payload, timeout=30.0):
    """Send `payload` (a whole request, as bytes) and read the answer."""
    with connect(url, timeout) as sock:
        sock.sendall(payload)
        return read_answer(sock)

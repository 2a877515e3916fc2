"""HTTP/1.1 on the wire for http1pool: a request's head written as urllib3 writes it, an answer's read as
http.client reads it.

urllib3 writes a head through http.client's putrequest/putheader, about eight Python calls a header,
and http.client reads one back through the email parser and Message.get, over a hundred calls. The
same bytes are written here with one format and one regular expression over all the headers, and a
plain answer's head (the status line and `Name: value` lines, all in the socket's buffer: what Gemini
sends) is read with a handful of regular expressions. Anything else, a header http.client would refuse
or an answer's head out of the ordinary, goes the standard library's way, so its checks and its
errors stay those of http.client."""
import http.client
import re
from functools import lru_cache

from urllib3.connection import _get_default_user_agent, _normalize_header_value
from urllib3.exceptions import InvalidHeader, LocationValueError, ProtocolError, URLSchemeUnknown
from urllib3.util.url import _encode_target, parse_url

from .fast_headers import _FIELDS, _PARSED_TYPES, _PLAIN

_DEFAULT_PORTS = {"http": 80, "https": 443}
_USER_AGENT = f"User-Agent: {_get_default_user_agent()}\r\n"  # what urllib3 names a call that names none
_NO_BODY_EXPECTED = {"GET", "HEAD", "DELETE", "TRACE", "OPTIONS", "CONNECT"}  # urllib3's body_to_chunks
_METHOD_CONTROL = re.compile(r"[^\x21-\x7e]")  # urllib3's (and http.client's) refusal of a method
# A block of headers http.client would send as they are: ASCII names without a colon, latin-1 values
# on one line. Anything else is checked header by header as http.client checks it.
_SENDABLE = re.compile(r"(?:[!-9;-~][\t !-9;-~]*: [^\r\n\u0100-\U0010ffff]*\r\n)*")
# The headers that change what urllib3 adds: its Host, Accept-Encoding, framing and User-Agent.
_NAMED = re.compile(r"^(host|accept-encoding|user-agent|content-length|transfer-encoding):", re.I | re.M)
_STRINGS = frozenset((str,))
_PATH_CONTROL = re.compile(r"[\x00-\x20\x7f]")  # http.client._validate_path
# An answer's status line, HTTP/1.1 with a final status, as http.client._read_status reads it.
_STATUS = re.compile(r"HTTP/1\.1 ([2-5]\d\d) ([^\r\n]*)\r\n")
_HEAD_END = b"\r\n\r\n"
_MAX_HEADERS = 100  # http.client's limit
_MAX_INTERIM = 10  # interim (1xx) answers skipped before the answer; more is a server gone wrong


@lru_cache(maxsize=256)
def route(method, url):
    """(origin, request line, Host line) for a call: the URL parsed and its target percent-encoded as
    urllib3's pool manager and pool do, the Host named as http.client names it. Pure, so remembered
    for the few URLs a worker calls again and again."""
    if _METHOD_CONTROL.search(method):
        raise ValueError(f"Method cannot contain non-token characters {method!r}")
    parts = parse_url(url)
    scheme = (parts.scheme or "http").lower()
    if not parts.host:
        raise LocationValueError("No host specified.")
    if scheme not in _DEFAULT_PORTS:
        raise URLSchemeUnknown(scheme)
    host = parts.host[1:-1] if parts.host.startswith("[") and parts.host.endswith("]") else parts.host
    port = parts.port or _DEFAULT_PORTS[scheme]
    target = _encode_target(parts.request_uri)
    if _PATH_CONTROL.search(target):
        raise ProtocolError("Connection aborted.",
                            http.client.InvalidURL(f"URL can't contain control characters. {target!r}"))
    named = host.rstrip(".")  # urllib3's connection drops an FQDN's dot from the Host it names
    named = f"[{named}]" if ":" in named else named
    shown = named if port == _DEFAULT_PORTS[scheme] else f"{named}:{port}"
    return (scheme, host, port), f"{method} {target} HTTP/1.1\r\n".encode("ascii"), f"Host: {shown}\r\n"


def request_head(line, host, method, headers, body):
    """The bytes urllib3 would send for a call with a bytes (or no) body: its request line, Host and
    Accept-Encoding unless the headers name them, the body's framing, a User-Agent, the headers, the body."""
    if headers and _STRINGS.issuperset(map(type, headers)) and _STRINGS.issuperset(map(type, headers.values())):
        fields = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
        # One line a header (no CR or LF inside a name or value), each of them plain.
        if fields.count("\n") != len(headers) or fields.count("\r") != len(headers) or \
                _SENDABLE.fullmatch(fields) is None:
            fields = _checked(headers)
    else:
        fields = _checked(headers) if headers else ""
    named = {name.lower() for name in _NAMED.findall(fields)} if fields else ()
    if isinstance(body, str):
        body = body.encode("utf-8")
    elif body is not None and not isinstance(body, bytes):
        body = bytes(memoryview(body))  # a buffer, as urllib3 sends it; anything else is no body we send
    chunked = False
    if "content-length" in named:
        framing = ""
    elif "transfer-encoding" in named:
        framing, chunked = "", True
    elif body is not None:
        framing = f"Content-Length: {len(body)}\r\n"
    else:
        framing = "" if method.upper() in _NO_BODY_EXPECTED else "Content-Length: 0\r\n"
    head = "".join((host if "host" not in named else "",
                    "Accept-Encoding: identity\r\n" if "accept-encoding" not in named else "",
                    framing, _USER_AGENT if "user-agent" not in named else "", fields, "\r\n"))
    head = line + head.encode("latin-1")
    if chunked:
        return head + (b"%x\r\n%b\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
    return head + body if body else head


def _checked(headers):
    """The header lines as http.client.putheader checks and encodes them one by one (its errors raised)."""
    lines = []
    for name, value in headers.items():
        raw = name.encode("ascii") if hasattr(name, "encode") else name
        if not http.client._is_legal_header_name(raw):
            raise ValueError(f"Invalid header name {raw!r}")
        if hasattr(value, "encode"):
            value = value.encode("latin-1")
        elif isinstance(value, int):
            value = str(value).encode("ascii")
        if http.client._is_illegal_header_value(value):
            raise ValueError(f"Invalid header value {value!r}")
        lines.append(raw + b": " + value + b"\r\n")
    return b"".join(lines).decode("latin-1")


class _Buffered:
    """The socket http.client.HTTPResponse expects, handing it the connection's buffered reader."""

    def __init__(self, reader):
        self.reader = reader

    def makefile(self, mode):
        return self.reader


def read_head(reader, method):
    """(status, version, reason, headers as (name, value) pairs) of the next answer on `reader`: interim
    answers (103 Early Hints, say; http.client skips only 100) are not the answer, and are skipped."""
    for _ in range(_MAX_INTERIM):
        head = _one_head(reader, method)
        if not 100 <= head[0] < 200 or head[0] == 101:
            return head
    raise ProtocolError(f"more than {_MAX_INTERIM} interim answers before the answer")


def _one_head(reader, method):
    buffered = reader.peek(1)  # waits for the answer's first bytes, at most one read from the socket
    end = buffered.find(_HEAD_END)
    if end > 0:
        text = buffered[:end + 4].decode("iso-8859-1")
        status = _STATUS.match(text)
        if status is not None and _PLAIN.fullmatch(text, status.end()) is not None and \
                _PARSED_TYPES.search(text, status.end()) is None:
            pairs = _FIELDS.findall(text, status.end())
            if len(pairs) <= _MAX_HEADERS:
                reader.read(end + 4)
                return int(status.group(1)), 11, status.group(2), pairs
    return _read_head_by_http_client(reader, method)


def _read_head_by_http_client(reader, method):
    """http.client's own reading: an earlier protocol, a 100 Continue, a folded or unusual header, a
    head longer than the buffer; urllib3's unfolding of a folded value applied after it."""
    answer = http.client.HTTPResponse(_Buffered(reader), method=method)
    answer.begin()
    answer.fp = None  # the reader stays the connection's: the body is read from it, not through http.client
    pairs = [(name, _normalize_header_value(value)) for name, value in answer.msg.items()]
    return answer.status, answer.version, answer.reason, pairs


def header_dicts(pairs):
    """(headers, lowered): what dict() of urllib3's HTTPHeaderDict would hold (the first spelling of a
    name, its values joined by ", "), and the same by lower-case name."""
    headers = dict(pairs)
    lowered = dict(zip(map(str.lower, headers), headers.values()))
    if len(headers) == len(pairs) == len(lowered):
        return headers, lowered
    headers, spelled = {}, {}
    for name, value in pairs:
        key = name.lower()
        if key in spelled:
            headers[spelled[key]] += ", " + value
        else:
            spelled[key] = name
            headers[name] = value
    return headers, {key: headers[name] for key, name in spelled.items()}


def framing(status, version, lowered, method):
    """(chunked, length, will_close) as urllib3 and http.client read an answer's body: chunked when its
    transfer codings end in chunked, else its Content-Length (None: to the connection's close)."""
    coding = lowered.get("transfer-encoding")
    chunked = coding is not None and (coding == "chunked" or "chunked" in [part.strip() for part in
                                                                          coding.lower().split(",")])
    length = None
    declared = lowered.get("content-length")
    if declared is not None and not chunked:
        try:
            lengths = {int(value) for value in declared.split(",")}
        except ValueError:
            lengths = ()
        if len(lengths) == 1:
            length = lengths.pop()
            length = length if length >= 0 else None
        elif len(lengths) > 1:  # which one frames the body is anyone's guess: urllib3 refuses it too
            raise InvalidHeader("Content-Length contained multiple unmatching values")
    if status in (204, 304) or 100 <= status < 200 or method == "HEAD":
        length = 0
    connection = (lowered.get("connection") or "").lower()
    if version == 11:
        will_close = "close" in connection
    else:  # HTTP/1.0 keeps a connection only when it says so (http.client's _check_close)
        will_close = not (lowered.get("keep-alive") or "keep-alive" in connection
                          or "keep-alive" in (lowered.get("proxy-connection") or "").lower())
    # http.client's rule too: with neither a length nor chunks, only the connection's close ends the body.
    # An interim answer leaves the connection unread past it: never reused.
    will_close = will_close or (length is None and not chunked) or 100 <= status < 200
    return chunked, length, will_close

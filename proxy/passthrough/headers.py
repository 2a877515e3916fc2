"""Header hygiene: hop-by-hop headers dropped, secrets never forwarded twice (wire.headers redacts stored ones)."""
from types import GeneratorType

from flask import Response
from werkzeug.datastructures import Headers

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "trailers", "transfer-encoding", "upgrade", "proxy-connection"}
# Set by the proxy itself, or meaningless beyond it.
NOT_FORWARDED = HOP_BY_HOP | {"host", "content-length", "accept-encoding", "x-goog-api-key", "authorization",
                              "cookie", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
                              "x-forwarded-port", "x-forwarded-prefix", "x-real-ip", "forwarded",
                              "x-api-key", "x-request-id"}
# Google's alt-svc advertises its own HTTP/3 endpoint, which is not where the client is talking.
NOT_RETURNED = HOP_BY_HOP | {"alt-svc", "content-length", "server", "date"}
_UNPREFIXED = ("CONTENT_TYPE", "CONTENT_LENGTH")  # the two headers a WSGI environ keeps without HTTP_
_KNOWN_MAX = 4096  # names remembered, in each of the caches below: clients and upstream may invent any
_names = {}  # environ key: (the header's name as Werkzeug spells it, whether it goes upstream), or None
_lower = {}  # a header's name as upstream spells it: in lower case
# What Werkzeug fixes up in an answer's headers as it starts it (Response.get_wsgi_headers).
_FIXED_AT_START = frozenset({"location", "content-location"})


def _name_of(key):
    if key.startswith("HTTP_") and key[5:] not in _UNPREFIXED:
        name = key[5:].replace("_", "-").title()
        known = name, name.lower() not in NOT_FORWARDED
    elif key in _UNPREFIXED:
        name = key.replace("_", "-").title()
        known = name, name.lower() not in NOT_FORWARDED
    else:
        known = None  # not a header (wsgi.input, REMOTE_ADDR, ...)
    if len(_names) < _KNOWN_MAX:
        _names[key] = known
    return known


def sent_headers(environ):
    """(the headers as the client sent them, as dict(request.headers) has them, for the log; those that go
    upstream), read from the WSGI environ once, each key's name worked out once per worker."""
    sent, forwarded, names = {}, {}, _names
    for key, value in environ.items():
        known = names[key] if key in names else _name_of(key)
        if known is None or not value and key in _UNPREFIXED:  # Werkzeug skips an empty Content-Type
            continue
        name, forward = known
        sent[name] = value
        if forward:
            forwarded[name] = value
    # Uncompressed from upstream: the proxy reads usage from the bytes it forwards.
    forwarded["Accept-Encoding"] = "identity"
    return sent, forwarded


def _lowered(name):
    lowered = name.lower()
    if len(_lower) < _KNOWN_MAX:
        _lower[name] = lowered
    return lowered


def client_headers(upstream, replaced=frozenset()):
    """Upstream's headers the client is given (name, value pairs), without those named in `replaced`
    (lower case), which the proxy sets itself."""
    lower = _lower
    return [(name, value) for name, value in upstream.items()
            if (low := lower[name] if name in lower else _lowered(name)) not in NOT_RETURNED and low not in replaced]


class RelayedResponse(Response):
    """An answer relayed as it streams. Werkzeug copies every answer's headers as it starts it, to fix up
    Location and Content-Location, and Content-Length for a few statuses and a body it holds whole: one
    streamed with neither, and a status that needs nothing, starts with its own (thirty calls fewer)."""

    def get_wsgi_headers(self, environ):
        status = self.status_code
        if status < 200 or status in (204, 304) or not isinstance(self.response, GeneratorType):
            return super().get_wsgi_headers(environ)
        lower = _lower
        for name, _ in self.headers._list:
            if (lower[name] if name in lower else _lowered(name)) in _FIXED_AT_START:
                return super().get_wsgi_headers(environ)
        return self.headers


def response_headers(pairs):
    """Werkzeug's Headers holding `pairs` as they are. Werkzeug checks every pair it is given (three calls a
    header); these are upstream's, parsed from its answer, and the proxy's own: str, one line each. Any
    that is not goes through Werkzeug's check, which refuses it as before."""
    for name, value in pairs:
        if value.__class__ is not str or name.__class__ is not str or "\n" in value or "\r" in value:
            return Headers(pairs)
    headers = Headers()
    headers._list = pairs  # Werkzeug's own store of a Headers' pairs
    return headers

"""Header hygiene: hop-by-hop headers dropped, secrets never forwarded twice (wire.headers redacts stored ones)."""
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
_KNOWN_MAX = 4096  # environ keys remembered: clients may invent header names without end
_names = {}  # environ key: (the header's name as Werkzeug spells it, whether it goes upstream), or None


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


def client_headers(upstream, replaced=frozenset()):
    """Upstream's headers the client is given (name, value pairs), without those named in `replaced`
    (lower case), which the proxy sets itself."""
    return [(name, value) for name, value in upstream.items()
            if (lower := name.lower()) not in NOT_RETURNED and lower not in replaced]


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

"""Gemini's secret-bearing headers, and a copy of headers with their values redacted for storage and logs."""
SECRET = frozenset({"x-goog-api-key", "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"})


_KNOWN_MAX = 4096  # header names remembered; clients and upstream may invent any
_secret = {}  # a header's name: whether it is one of SECRET


def _is_secret(name):
    secret = name.lower() in SECRET
    if len(_secret) < _KNOWN_MAX:
        _secret[name] = secret
    return secret


def redacted(headers):
    known = _secret
    return {name: ("[redacted]" if (known[name] if name in known else _is_secret(name)) else value)
            for name, value in headers.items()}

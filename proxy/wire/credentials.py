"""The credentials a request presents, read once: at most one of each, and one Gemini key at most.

A proxy key and a Gemini key can both ride in the slots Gemini reads (x-goog-api-key, ?key=, Bearer).
Two values in one slot (two headers, which the server joins with a comma, or two `key` parameters),
or keys in two Gemini slots at once, leave it open which one is meant and which one travels on: the
proxy refuses them rather than guess, so it never forwards one while checking the other."""
from dataclasses import dataclass
from typing import Optional

HEADER, QUERY, BEARER = "header", "query", "bearer"
# The WSGI environ's key for each header a credential rides in.
_ENVIRON_KEYS = {"X-API-KEY": "HTTP_X_API_KEY", "Authorization": "HTTP_AUTHORIZATION",
                 "x-goog-api-key": "HTTP_X_GOOG_API_KEY"}


class BadCredentials(ValueError):
    """More than one credential where one is meant; always a 400."""


@dataclass(frozen=True)
class Presented:
    api_key: str = ""  # X-API-KEY: always the proxy's own
    bearer: str = ""  # Authorization: Bearer
    gemini: Optional[tuple] = None  # (slot, value): the one key in a slot Gemini reads, on the pass-through


class EnvironHeaders:
    """The credential headers of a WSGI environ, for `presented`: read as request.headers.get reads them, in
    one look-up where Werkzeug's takes five calls."""

    __slots__ = ("environ",)

    def __init__(self, environ):
        self.environ = environ

    def get(self, name, default=None):
        return self.environ.get(_ENVIRON_KEYS[name], default)


def _single(headers, name):
    value = headers.get(name, "").strip()
    if "," in value:  # keys hold no commas; repeated headers reach the app joined by them
        raise BadCredentials(f"The request carries more than one {name} header; send one credential.")
    return value


def _bearer(headers):
    value = _single(headers, "Authorization")
    if value[:7].lower() == "bearer ":
        return value[7:].strip()
    return ""


def presented(headers, query_key="", native=False):
    """What the request presents; on the pass-through (`native`), also which Gemini slot holds a key."""
    found = Presented(api_key=_single(headers, "X-API-KEY"), bearer=_bearer(headers))
    if not native:
        return found
    slots = [(slot, value) for slot, value in ((HEADER, _single(headers, "x-goog-api-key")),
                                               (QUERY, query_key), (BEARER, found.bearer)) if value]
    if len(slots) > 1 and len({value for _, value in slots}) == 1:
        # One key in two slots (the Gemini CLI's bearer mode sends it as Bearer and x-goog-api-key): one
        # credential, sent on in the first of them.
        slots = slots[:1]
    if len(slots) > 1:
        raise BadCredentials("The request carries keys in more than one of x-goog-api-key, key= and "
                             "Authorization; send one credential.")
    return Presented(found.api_key, found.bearer, slots[0] if slots else None)

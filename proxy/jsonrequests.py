"""Every JSON request body the app reads goes through the bounded parser, via Flask's JSON provider."""
from flask import Request
from flask.json.provider import DefaultJSONProvider

from .errors import MalformedJson
from .wire.jsonbody import BadJson, loads


class BoundedJSONProvider(DefaultJSONProvider):
    """Flask's JSON, parsing with proxy.wire.jsonbody: request.get_json, and so every schema check and
    ns.payload, sees a value nested at most MAX_DEPTH deep, with no NaN, Infinity or endless integer."""

    def loads(self, s, **kwargs):
        return loads(s)


class BoundedRequest(Request):
    """A body the bounded parser refuses is MALFORMED_JSON with the parser's reason (the depth limit,
    NaN), where Flask would raise a bare 400 that says nothing."""

    def on_json_loading_failed(self, e):
        if isinstance(e, BadJson):
            raise MalformedJson(str(e)) from None
        return super().on_json_loading_failed(e)

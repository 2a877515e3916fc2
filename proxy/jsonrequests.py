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

    def get_json(self, force=False, silent=False, cache=True):
        # The usual call (request.get_json(), ns.payload, a schema check) on a body sent as application/json:
        # the same value, cached the same way, without working out the mimetype from its parsed options and
        # the JSON provider's dispatch (a third of reading the body). Anything else, refusals too, is Flask's.
        if cache and not force and self.environ.get("CONTENT_TYPE") == "application/json":
            cached = self._cached_json[silent]
            if cached is not Ellipsis:
                return cached
            try:
                value = loads(self.get_data(cache=True))
            except BadJson:
                pass
            else:
                self._cached_json = (value, value)
                return value
        return super().get_json(force, silent, cache)

    def on_json_loading_failed(self, e):
        if isinstance(e, BadJson):
            raise MalformedJson(str(e)) from None
        return super().on_json_loading_failed(e)

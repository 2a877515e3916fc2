"""Where the proxy reaches into google-generativeai's REST transport, with the versions that was read against.

Each call through the SDK rebuilt, in Python, things that differ only with the model: the URL (matching
templates, expanding them), the query string (an empty message written to JSON and read back), the body's
JSON (indented in pure Python), and the answer's message (json_format, field by field). These seams
keep the SDK's calls and their order and only make each step cheaper; tests/test_sdk_seams.py fails if a
version or a seam moves."""
import functools
import re

from google.ai.generativelanguage_v1beta.services.generative_service.transports import rest, rest_base
from google.protobuf import json_format

from . import sdk_answers

# Read against these: another version's transport may build its requests differently.
SDK_VERSIONS = {"google-ai-generativelanguage": "0.6.15", "google-api-core": "2.33.0", "protobuf": "5.29.6"}
_BASE = rest_base._BaseGenerativeServiceRestTransport
METHODS = (_BASE._BaseGenerateContent, _BASE._BaseCountTokens)  # the calls GeminiSdk makes
_MAX_ROUTES = 256  # models remembered per method; a caller's own key may name any model it likes
_VARIABLE = re.compile(r"\{(\w+)=")


def _compact_body(transcoded_request):
    """The request's JSON as the SDK writes it (field names, enums as numbers), without its indentation:
    json.dumps indents only in pure Python, about 190 calls for a short prompt; json's C encoder writes the
    same JSON without them."""
    return json_format.MessageToJson(transcoded_request["body"], use_integers_for_enums=True, indent=None)


class _Transcoder:
    """path_template.transcode for a method whose body is the whole request but its `model`: the URI and
    HTTP method worked out once per model (by the SDK's own transcode), the body the request without `model`."""

    def __init__(self, method):
        self.transcode = method._get_transcoded_request
        self.routes = {}

    def __call__(self, http_options, request):
        pb_request = type(request).pb(request)
        route = self.routes.get(pb_request.model)
        if route is None:
            transcoded = self.transcode(http_options, request)  # raises ValueError for a model no template takes
            if len(self.routes) < _MAX_ROUTES:
                self.routes[pb_request.model] = (transcoded["uri"], transcoded["method"])
            return transcoded
        body = type(pb_request)()
        body.CopyFrom(pb_request)
        body.ClearField("model")
        return {"uri": route[0], "body": body, "query_params": type(pb_request)(), "method": route[1]}


def _body_is_all_but_model(method):
    options = method._get_http_options()
    return all(option.get("body") == "*" and _VARIABLE.findall(option["uri"]) == ["model"] for option in options)


class _QueryParams:
    """The method's query parameters: for a request whose every field is in the body (an empty query message),
    the SDK's own answer for an empty message, worked out once."""

    def __init__(self, method):
        self.query_params = method._get_query_params_json
        self.empty = None

    def __call__(self, transcoded_request):
        if transcoded_request["query_params"].ListFields():
            return self.query_params(transcoded_request)
        if self.empty is None:
            self.empty = self.query_params(transcoded_request)
        return dict(self.empty)


class AttemptTimeout:
    """An attempt's timeout, as the SDK's method wrapper takes it. Given a number, the wrapper builds a
    TimeToDeadlineTimeout and a functools.wraps wrapper on every call, to pass the call that same number
    (one attempt: retries are the engine's, so retry=None); this passes it without them."""

    __slots__ = ("seconds",)

    def __init__(self, seconds):
        self.seconds = seconds

    def __call__(self, function):
        return functools.partial(function, timeout=self.seconds)


_STEPS = ("_get_transcoded_request", "_get_request_body_json", "_get_query_params_json")
ORIGINALS = {}  # (method, step name): the SDK's own step, as it was before install (tests compare the two)


def install():
    """Each seam in place; idempotent."""
    for method in METHODS:
        for step in _STEPS:
            ORIGINALS.setdefault((method, step), method.__dict__[step])
        method._get_request_body_json = staticmethod(_compact_body)
        if _body_is_all_but_model(method) and not isinstance(method.__dict__["_get_transcoded_request"], _Transcoder):
            method._get_transcoded_request = _Transcoder(method)
            method._get_query_params_json = _QueryParams(method)
    # Its answers read by one protobuf constructor where json_format would read them the same way field by field.
    ORIGINALS.setdefault((rest, "json_format"), rest.json_format)
    if not isinstance(rest.json_format, sdk_answers.JsonFormat):
        rest.json_format = sdk_answers.JsonFormat()

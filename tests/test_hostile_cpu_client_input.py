"""A hostile client against the parts of the request path that now read the WSGI environ themselves:
headers (passthrough.headers.sent_headers, wire.credentials.EnvironHeaders), X-Request-ID added by the
security middleware, the JSON body read without Flask's get_json, jsonschema_rs deciding validity, and the
memo of parsed routes."""
import string

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from werkzeug.datastructures import EnvironHeaders

from proxy.api.validation import fast_validator
from proxy.passthrough import headers as passthrough_headers
from proxy.wire import credentials, routes
from tests.conftest import KEYS, MODELS

PATH = f"/v1beta/models/{MODELS[0]}:generateContent"
BODY = {"contents": [{"parts": [{"text": "hi"}]}]}

# ---------------------------------------------------------------------------------------------- X-Request-ID


@pytest.mark.parametrize("sent", ["abcdefgh\n", "abcdefgh\r\nSet-Cookie: x=1", "abcdefgh\r", " abcdefgh",
                                  "a" * 65, "abc", "abcdefgh\x00", "abcdéfgh", "abcdefgh\t"])
def test_a_client_request_id_that_is_not_safe_is_replaced(client, sent):
    answer = client.get("/health", environ_overrides={"HTTP_X_REQUEST_ID": sent})
    ids = [value for name, value in answer.headers.items() if name.lower() == "x-request-id"]
    assert len(ids) == 1 and ids[0] != sent and len(ids[0]) == 32, ids


@pytest.mark.parametrize("path", ["/health", PATH, "/gemini/generate", "/nowhere"])
def test_a_safe_client_request_id_is_the_answers_only_one(client, emulator, path):
    method = client.get if path in ("/health", "/nowhere") else client.post
    body = {"prompt": {"text": "hi"}} if path == "/gemini/generate" else BODY
    answer = method(path, json=body, headers={"X-Request-ID": "client-chosen-id-01"})
    ids = [value for name, value in answer.headers.items() if name.lower() == "x-request-id"]
    assert ids == ["client-chosen-id-01"]


# ---------------------------------------------------------------------------------------------- headers

_NAME = st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=12)
_VALUE = st.text(st.characters(min_codepoint=0, max_codepoint=0x2ff), max_size=12)
_KEYS = st.one_of(_NAME.map(lambda n: "HTTP_" + n.upper().replace("-", "_")),
                  st.sampled_from(["CONTENT_TYPE", "CONTENT_LENGTH", "HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH",
                                   "HTTP_X_API_KEY", "HTTP_AUTHORIZATION", "HTTP_X_GOOG_API_KEY", "HTTP_HOST",
                                   "HTTP_X_REQUEST_ID", "HTTP_", "HTTP__", "REMOTE_ADDR", "wsgi.input",
                                   "HTTP_TRANSFER_ENCODING", "HTTP_ACCEPT_ENCODING", "HTTP_CONNECTION"]))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.dictionaries(_KEYS, _VALUE, max_size=10))
def test_headers_read_from_the_environ_are_werkzeugs(environ):
    sent, forwarded = passthrough_headers.sent_headers(environ)
    assert sent == dict(EnvironHeaders(environ))
    expected = {name: value for name, value in sent.items()
                if name.lower() not in passthrough_headers.NOT_FORWARDED}
    expected["Accept-Encoding"] = "identity"
    assert forwarded == expected
    for secret in ("x-api-key", "authorization", "x-goog-api-key", "x-request-id", "host"):
        assert secret not in {name.lower() for name in forwarded}


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_KEYS, _VALUE, max_size=8))
def test_credentials_read_from_the_environ_are_what_werkzeugs_headers_give(environ):
    def outcome(headers):
        try:
            return credentials.presented(headers)
        except credentials.BadCredentials as exc:
            return ("refused", str(exc))

    assert outcome(credentials.EnvironHeaders(environ)) == outcome(EnvironHeaders(environ))


def test_the_header_name_memo_stays_bounded_under_invented_names():
    for n in range(10_000):
        passthrough_headers.sent_headers({f"HTTP_X_INVENTED_{n}": "v"})
    assert len(passthrough_headers._names) <= passthrough_headers._KNOWN_MAX


@pytest.mark.parametrize("extra", [
    {"HTTP_X_GOOG_API_KEY": f"{KEYS[0]},{KEYS[1]}"},  # a repeated header, joined by the server
    {"HTTP_X_GOOG_API_KEY": KEYS[0], "HTTP_X_API_KEY": KEYS[1]},
], ids=["repeated", "two-slots"])
def test_a_repeated_or_doubled_key_is_never_forwarded_as_is(client, emulator, extra):
    answer = client.post(PATH, json=BODY, environ_overrides=extra)
    assert answer.status_code in (200, 400)
    received = emulator.received()
    assert len(received) == (1 if answer.status_code == 200 else 0)
    for each in received:
        assert KEYS[1] not in " ".join(map(str, each["headers"].values()))


# ---------------------------------------------------------------------------------------------- routes


def test_the_route_memo_stays_bounded_and_never_mixes_routes():
    first = routes.parse(PATH)
    for n in range(10_000):
        route = routes.parse(f"/v1beta/models/m-{n}:generateContent")
        assert route.model == f"models/m-{n}" or route.model.endswith(f"m-{n}")
    assert len(routes._parsed) <= routes._KNOWN_MAX
    again = routes.parse(PATH)
    assert again == first and again.model == first.model and again.template == first.template


def test_a_refused_path_is_not_remembered():
    for bad in ["/v1beta/models/..%2f:generateContent", "/v1beta/models/a%00b", "/v1beta//models"]:
        with pytest.raises(routes.BadRoute):
            routes.parse(bad)
        assert bad not in routes._parsed


# ---------------------------------------------------------------------------------------------- JSON bodies


@pytest.mark.parametrize("content_type,body", [
    ("application/json", b'\xef\xbb\xbf{"prompt": {"text": "hi"}}'),  # a UTF-8 BOM
    ("application/json", b'{"prompt": {"text": "hi"}, "prompt": {"text": "again"}}'),  # a repeated field
    ("application/json", b'{"prompt": {"text": NaN}}'),
    ("application/json", b'{"prompt": {"text": "hi"}, "temperature": 1e400}'),
    ("application/json", b'{"prompt": {"text": "hi"}, "max_output_tokens": ' + b"9" * 5000 + b"}"),
    ("application/json", b"[" * 5000 + b"]" * 5000),
    ("application/json", '{"prompt": {"text": "hi"}}'.encode("utf-16")),
    ("application/json; charset=utf-16", '{"prompt": {"text": "hi"}}'.encode("utf-16")),
    ("APPLICATION/JSON", b'{"prompt": {"text": "hi"}}'),
    ("application/json ", b'{"prompt": {"text": "hi"}}'),
    ("text/plain", b'{"prompt": {"text": "hi"}}'),
    ("application/x-www-form-urlencoded", b'{"prompt": {"text": "hi"}}'),
    ("application/json", b'{"prompt": {"text": "\\ud800"}}'),  # a lone surrogate, escaped
    ("application/json", b'{"prompt": {"text": "\xff"}}'),  # not UTF-8
    ("application/json", b""),
], ids=["bom", "duplicate-key", "nan", "huge-float", "huge-int", "deep", "utf16-unlabelled", "utf16-labelled",
        "upper-case-type", "trailing-space-type", "text-plain", "form", "lone-surrogate", "not-utf8", "empty"])
def test_a_body_gets_the_answer_flasks_get_json_gave(make_app, emulator, content_type, body):
    """The fast get_json and Flask's must agree: compare the status with the app told to skip the fast path."""
    from proxy.jsonrequests import BoundedRequest

    app = make_app()
    fast = app.test_client().post("/gemini/generate", data=body, content_type=content_type)
    fast_status, fast_code = fast.status_code, (fast.get_json(silent=True) or {}).get("error", {}).get("code")
    original = BoundedRequest.get_json
    try:
        BoundedRequest.get_json = lambda self, *a, **k: super(BoundedRequest, self).get_json(*a, **k)
        slow = app.test_client().post("/gemini/generate", data=body, content_type=content_type)
    finally:
        BoundedRequest.get_json = original
    assert (fast_status, fast_code) == \
        (slow.status_code, (slow.get_json(silent=True) or {}).get("error", {}).get("code"))
    assert fast_status < 500


# ---------------------------------------------------------------------------------------------- jsonschema_rs


def test_the_fast_check_accepts_no_multiple_jsonschema_refuses():
    from jsonschema import Draft4Validator

    from proxy.api.validation import SchemaCheck

    # jsonschema_rs reads multipleOf exactly (0.3 a multiple of 0.1), jsonschema by float arithmetic: such a
    # schema is left to jsonschema alone
    schema = {"type": "object", "properties": {"t": {"type": "number", "multipleOf": 0.1}}}
    assert fast_validator(schema) is None
    assert bool(list(SchemaCheck(schema).iter_errors({"t": 0.3}))) == (not Draft4Validator(schema).is_valid({"t": 0.3}))


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["prompt", "text", "temperature", "max_output_tokens", "stop_sequences", "model", "system",
                         "x", "name", "rate_limit", "models", "expires_at"]), children, max_size=5),
    max_leaves=20)


def test_no_models_schema_check_accepts_what_jsonschema_refuses(app):
    from proxy.api import api
    from proxy.api.validation import SchemaCheck, schema_of

    with app.app_context():
        checks = [(model.name, SchemaCheck(schema_of(model))) for model in list(api.models.values())]
    checks = [(name, check) for name, check in checks if check.fast is not None]
    assert checks

    @settings(max_examples=400, deadline=None)
    @given(_JSON)
    def holds(body):
        for name, check in checks:
            if check.fast.is_valid(body):
                assert check.python.is_valid(body), (name, body)

    holds()


_QUERY = st.lists(st.tuples(st.sampled_from(["key", "KEY", "key%00", "k%65y", "alt", "key[]"]),
                            st.sampled_from(["", KEYS[0], KEYS[1], "a%2Cb", "%20" + KEYS[0], KEYS[0] + "%0d%0a",
                                             "a+b", "%ZZ", "\u00e9"])), max_size=3)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_KEYS, _VALUE, max_size=6), _QUERY)
def test_a_native_requests_credentials_are_read_as_with_werkzeugs_headers(environ, query):
    """native.read over the environ's credential headers, as it read them through request.headers."""
    from proxy.wire import native

    environ = dict(environ, PATH_INFO=PATH, QUERY_STRING="&".join(f"{k}={v}" for k, v in query))

    def outcome(headers):
        try:
            return native.read(environ, headers).presented
        except (credentials.BadCredentials, ValueError) as exc:
            return ("refused", type(exc).__name__, str(exc))

    assert outcome(credentials.EnvironHeaders(environ)) == outcome(EnvironHeaders(environ))


@pytest.mark.parametrize("spelling", ["lower", "title", "upper"])
def test_secret_headers_are_never_stored_however_spelled(make_app, emulator, spelling):
    from sqlalchemy import inspect, text

    from models import db

    app = make_app(LOG_BODY="true")
    secrets = {"Cookie": "session=cookie-secret-0001", "Proxy-Authorization": "Basic proxy-secret-0002",
               "X-Goog-Api-Key": KEYS[0], "Set-Cookie": "x=set-cookie-secret-0003"}
    spell = {"lower": str.lower, "title": str.title, "upper": str.upper}[spelling]
    answer = app.test_client().post(PATH, json=BODY, headers={spell(k): v for k, v in secrets.items()})
    assert answer.status_code == 200
    with app.app_context():
        stored = "".join(repr(tuple(row)) for table in inspect(db.engine).get_table_names()
                         for row in db.session.execute(text(f"SELECT * FROM {table}")))
    assert "[redacted]" in stored  # the client's headers are stored, with these redacted
    for value in ("cookie-secret-0001", "proxy-secret-0002", KEYS[0], "set-cookie-secret-0003"):
        assert value not in stored

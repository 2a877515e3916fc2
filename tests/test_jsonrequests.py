"""BoundedRequest.get_json's short way for application/json bodies: the value, the cache and the refusals of Flask's."""
import pytest
from flask import Flask, Request

from proxy.jsonrequests import BoundedJSONProvider, BoundedRequest

BODIES = [b'{"prompt": {"text": "hi"}}', b"[1, 2.5, null]", b'"x"', b"", b"{", b'{"a": NaN}', b'{"a": 1e400}',
          b'{"a": 1, "a": 2}', b"[" * 70 + b"]" * 70, b"\xff", "{\"t\": \"h\u00e9\"}".encode(), b'\xef\xbb\xbf{}',
          b"1" * 101]
TYPES = ["application/json", "application/json; charset=utf-8", "text/plain", "application/x+json", None]


def _app():
    app = Flask(__name__)
    app.request_class = BoundedRequest
    app.json = BoundedJSONProvider(app)
    return app


def _outcome(get_json, request, **kwargs):
    try:
        first = get_json(request, **kwargs)
        again = get_json(request, **kwargs)
    except Exception as exc:
        return "refused", type(exc), str(exc)
    return "read", first, again is first


@pytest.mark.parametrize("body", BODIES)
@pytest.mark.parametrize("content_type", TYPES)
@pytest.mark.parametrize("options", [{}, {"silent": True}, {"force": True}, {"cache": False}])
def test_the_same_as_flask_reads(body, content_type, options):
    app = _app()
    outcomes = []
    for get_json in (BoundedRequest.get_json, Request.get_json):
        headers = {"Content-Type": content_type} if content_type else {}
        with app.test_request_context("/", method="POST", data=body, headers=headers):
            from flask import request
            outcomes.append(_outcome(get_json, request._get_current_object(), **options))
    assert outcomes[0] == outcomes[1]


def test_a_silent_read_then_a_loud_one_share_the_value():
    with _app().test_request_context("/", method="POST", data=b'{"a": 1}', content_type="application/json"):
        from flask import request
        assert request.get_json(silent=True) is request.get_json() is request.get_json(silent=True)

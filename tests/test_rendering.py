"""restx_json answers as Flask-RESTX would have answered the same dict: status, headers and bytes."""
import pytest
from flask import Flask
from flask_restx import Api, Resource

from proxy.api.rendering import restx_json

DATA = {"text": "h\u00e9llo \U0001F600 \"quoted\"", "metrics": {"prompt_tokens": 3, "total_tokens": None},
        "latency_ms": 812.5, "cache": "OFF", "list": [1, 2.5, True]}
ACCEPTS = [None, "application/json", "text/html", "application/xml", "text/plain", "*/*", "application/json;q=0",
           "text/plain, application/json;q=0.1", "garbage;;q=x"]


def _app(debug, settings):
    app = Flask(__name__)
    app.debug = debug
    if settings is not None:
        app.config["RESTX_JSON"] = settings
    api = Api(app)

    @api.route("/restx")
    class ByRestx(Resource):
        def post(self):
            return DATA, 201

    @api.route("/ours")
    class Ours(Resource):
        def post(self):
            return restx_json(DATA, 201)

    return app


@pytest.mark.parametrize("debug,settings", [(False, None), (True, None), (False, {"sort_keys": True}),
                                            (True, {"ensure_ascii": False})])
@pytest.mark.parametrize("accept", ACCEPTS)
def test_the_same_answer_as_flask_restx_writes(debug, settings, accept):
    client = _app(debug, settings).test_client()
    headers = {"Accept": accept} if accept else {}
    theirs, ours = client.post("/restx", headers=headers), client.post("/ours", headers=headers)
    assert (ours.status, list(ours.headers), ours.get_data()) == (theirs.status, list(theirs.headers),
                                                                   theirs.get_data())

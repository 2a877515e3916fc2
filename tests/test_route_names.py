"""Every pass-through call is recorded under a readable route name: its resources as placeholders, its method
after a colon only when it has one."""
import pytest

from .conftest import KEYS, MODELS, rows

CALLS = [
    ("GET", f"/v1beta/models/{MODELS[0]}", "/v1beta/models/{model}"),
    ("GET", "/v1beta/models", "/v1beta/models"),
    ("POST", f"/v1beta/models/{MODELS[0]}:countTokens", "/v1beta/models/{model}:countTokens"),
    ("GET", "/v1/models", "/v1/models"),
    ("GET", "/v1beta/files", "/v1beta/files"),
    ("GET", "/v1beta/cachedContents", "/v1beta/cachedContents"),
    ("GET", "/v1beta/files/abc123", "/v1beta/files/{name}"),
    ("GET", "/v1beta/batches/b-1", "/v1beta/batches/{name}"),
    ("GET", "/v1beta/interactions/i-1", "/v1beta/interactions/{name}"),
    ("GET", "/v1beta/openai/models", "/v1beta/openai/models"),
    ("GET", f"/v1beta/openai/models/{MODELS[0]}", "/v1beta/openai/models"),
    ("GET", "/download/v1beta/files/abc123:download", "/download/v1beta/files/{name}:download"),
]


@pytest.mark.parametrize("method, path, route", CALLS)
def test_each_call_is_recorded_under_its_route_template(make_app, tmp_path, method, path, route):
    app = make_app()
    body = {"contents": [{"parts": [{"text": "hi"}]}]} if method == "POST" else None
    answer = app.test_client().open(path, method=method, json=body, headers={"x-goog-api-key": KEYS[0]})
    assert answer.status_code < 500, answer.get_data(as_text=True)
    recorded = rows(app.config["SQLALCHEMY_DATABASE_URI"], "SELECT route, method FROM request_log")
    assert [tuple(row) for row in recorded] == [(route, method)]
    assert "None" not in recorded[0][0]

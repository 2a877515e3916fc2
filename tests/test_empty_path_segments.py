"""`//` in a path is a JSON 404 in the shape of its API, on every route, through Gunicorn: never HTML, never a 5xx."""
import itertools

import pytest

from tests import rawhttp
from tests.conftest import MODELS

pytestmark = pytest.mark.e2e

PROXY_PATHS = [
    "//", "/analytics//summary", "//analytics/summary", "/analytics/requests//x", "/admin//clients",
    "/admin/clients//1/revoke", "/gemini//generate", "//gemini/generate", "/gemini/generate//", "/health//",
    "//health", "//metrics", "/docs//", "//docs", "//swagger.json", "//dashboard", "/dashboard//static/x",
    "/swaggerui//x",
]
NATIVE_PATHS = [
    "//v1beta/models", "/v1beta//models", f"/v1beta/models//{MODELS[0]}:generateContent",
    f"/v1/models/{MODELS[0]}//:countTokens", "//upload/v1beta/files", "/upload//v1beta/files", "/upload/v1beta//files",
]
COMPAT_PATHS = ["/gemini-proxy//", "//gemini-proxy"]


def ask(server, method, path):
    body = b"{}"
    head = rawhttp.head(method, f"{path}?key=x", [("Content-Type", "application/json"), ("Content-Length", len(body))])
    return rawhttp.exchange(server.url, head + body)


def test_an_empty_segment_is_a_json_404_in_the_shape_of_its_api(gunicorn, emulator):
    server = gunicorn()
    for method, path in itertools.product(("GET", "POST", "PUT", "DELETE"), PROXY_PATHS + NATIVE_PATHS + COMPAT_PATHS):
        answer = ask(server, method, path)
        # The pass-through's own path parser may refuse a native path first, as Google does, with a 400.
        allowed = (400, 404) if path in NATIVE_PATHS else (404,)
        assert answer.status in allowed and answer.headers["content-type"] == "application/json", (method, path, answer)
        error = answer.json()
        if path in NATIVE_PATHS:  # Google's shape, so SDKs raise what they raise against Gemini
            assert error["error"]["status"] in ("NOT_FOUND", "INVALID_ARGUMENT"), (path, error)
        elif path in COMPAT_PATHS:
            assert error["result"] == "Failed" and error["errors"][0]["message"], (path, error)
        else:
            assert error["error"]["code"] == "NOT_FOUND", (path, error)
    assert emulator.stats()["total"] == 0  # nothing was forwarded


def test_an_empty_segment_under_a_mount_prefix_is_a_json_404(gunicorn):
    server = gunicorn(SCRIPT_NAME="/gemini-api")
    for path in ("/gemini-api//analytics/summary", "/gemini-api/analytics//summary", "/gemini-api//v1beta/models"):
        answer = ask(server, "POST", path)
        assert (answer.status, answer.headers["content-type"]) == (404, "application/json"), (path, answer)

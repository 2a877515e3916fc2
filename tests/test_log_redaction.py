"""No credential in any line the server writes: Gunicorn's access and error logs, its tracebacks, the app's logs."""
import uuid

import pytest
import requests

from tests import rawhttp
from tests.conftest import MODELS

pytestmark = pytest.mark.e2e

GENERATE = f"/v1beta/models/{MODELS[0]}:generateContent"
BODY = {"contents": [{"parts": [{"text": "hello"}]}]}
# Every atom that can carry a credential, as an operator's own format might print them.
LOUD_ACCESS_LOG = ("--access-logformat 'access: %(r)s q=%(q)s g=%({x-goog-api-key}i)s a=%({x-api-key}i)s "
                   "b=%({authorization}i)s e=%({http_x_goog_api_key}e)s'")
# Query names Google reads as a credential, in the spellings a client may use.
QUERY_SPELLINGS = ["key", "KEY", "Key", "k%65y", "%6B%65%79", "%6b%65%79", "access_token", "oauth_token"]


def secret(label):
    return f"sekrit-{label.replace('%', '')}-{uuid.uuid4().hex[:12]}"


def assert_nothing_leaked(output, secrets):
    leaked = [value for value in secrets if value in output]
    assert not leaked, f"{leaked} in the server's output:\n{output[-4000:]}"


def test_no_credential_in_any_log_line_of_the_proxy(gunicorn, emulator):
    server = gunicorn(ACCESS_LOG="true", LOG_LEVEL="DEBUG", GUNICORN_CMD_ARGS=LOUD_ACCESS_LOG)
    secrets = []
    for name in QUERY_SPELLINGS:
        secrets.append(secret(name))
        requests.post(f"{server.url}{GENERATE}?alt=sse&{name}={secrets[-1]}", json=BODY, timeout=30)
    for header in ("x-goog-api-key", "X-API-KEY"):
        secrets.append(secret(header))
        requests.get(f"{server.url}/v1beta/models", headers={header: secrets[-1]}, timeout=30)
    secrets.append(secret("bearer"))
    requests.post(f"{server.url}/gemini/generate", json={"prompt": {"text": "hi"}},
                  headers={"Authorization": f"Bearer {secrets[-1]}"}, timeout=30)
    upload_id, grant = secret("upload_id"), secret("grant")
    secrets += [upload_id, grant]
    requests.post(f"{server.url}/upload/v1beta/files?upload_id={upload_id}&upload_protocol=resumable"
                  f"&gemini_proxy_key=key-0.{grant}", data=b"file bytes",
                  headers={"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0"}, timeout=30)
    # A path the app once failed on inside Flask-RESTX's error handler, so Gunicorn logged its URI.
    secrets.append(secret("slashes"))
    requests.post(f"{server.url}/analytics//summary?key={secrets[-1]}", timeout=30)
    # Request lines Gunicorn itself refuses, and logs, before the app sees them.
    for target in ("/v1beta/models?key={}\x01", "/v1beta/models?k%65y={}\x7f", " /v1beta/models?KEY={}"):
        secrets.append(secret("refused"))
        rawhttp.exchange(server.url, rawhttp.head("GET", target.format(secrets[-1])))
    # A body that breaks its chunked framing, on a request whose URI carries a key.
    secrets.append(secret("chunked"))
    rawhttp.exchange(server.url, rawhttp.head("POST", f"{GENERATE}?key={secrets[-1]}",
                                              [("Transfer-Encoding", "chunked")]) + b"zz\r\nabc\r\n0\r\n\r\n")

    server.stop()  # every worker's lines are written out
    output = server.output()
    assert "Invalid request from ip=" in output and "access: " in output  # both logs were exercised
    assert_nothing_leaked(output, secrets)
    assert "[redacted]" in output


def test_gunicorn_masks_the_uri_and_traceback_of_a_request_the_app_fails_on(gunicorn):
    """"Error handling request <URI>" and the exception after it, as Gunicorn logs an app's crash."""
    server = gunicorn(app="tests.crashing_app:app", ACCESS_LOG="true", GUNICORN_CMD_ARGS=LOUD_ACCESS_LOG)
    secrets = []
    for name in QUERY_SPELLINGS:
        secrets += [secret(name), secret("header")]
        answer = requests.get(f"{server.url}/boom?{name}={secrets[-2]}", headers={"x-goog-api-key": secrets[-1]},
                              timeout=30)
        assert answer.status_code == 500

    server.stop()
    output = server.output()
    assert output.count("Error handling request") == len(QUERY_SPELLINGS)
    assert "RuntimeError: could not serve /boom?" in output
    assert_nothing_leaked(output, secrets)

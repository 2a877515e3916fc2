"""The repo's nginx site in front of Gunicorn: plain requests, streams that arrive chunk by chunk, file
uploads whose chunks come back through nginx, and the client's own address in the proxy's access log
(believed from nginx only)."""
import http.client
import json
import time
from urllib.parse import urlparse

import pytest
import requests
from google import genai
from google.genai import types

from tests import processes
from tests.conftest import KEYS, MODELS

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(gunicorn, tmp_path):
    server = gunicorn(ACCESS_LOG="true")
    nginx = processes.start_nginx(str(tmp_path), urlparse(server.url).port)
    yield server, nginx
    nginx.stop()


def post_from(source, url, path, body, headers=None):
    """POST from a chosen loopback address, as a client on another machine would arrive."""
    target = urlparse(url)
    connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30, source_address=(source, 0))
    try:
        connection.request("POST", path, body=json.dumps(body),
                           headers={"Content-Type": "application/json", **(headers or {})})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), json.loads(response.read())
    finally:
        connection.close()


def access_line(server, request_id):
    """Gunicorn writes the access line once the response is sent, which may be after the client has it."""
    for _ in range(100):
        lines = [line for line in server.output().splitlines() if f"rid={request_id}" in line]
        if lines:
            assert len(lines) == 1
            return lines[0]
        time.sleep(0.05)
    pytest.fail(f"no access log line for {request_id}:\n{server.output()[-2000:]}")


def test_a_request_through_nginx_is_answered_and_logged_with_the_clients_address(stack):
    server, nginx = stack
    status, headers, body = post_from("127.0.0.2", nginx.url, "/gemini/generate",
                                      {"prompt": {"text": "Tell me a joke"}},
                                      {"X-Forwarded-For": "203.0.113.9"})  # a client's claim, not believed
    assert status == 200 and body["text"] and body["metrics"]["total_tokens"] > 0
    line = access_line(server, headers["X-Request-ID"])
    assert line.startswith("127.0.0.2 ") and "203.0.113.9" not in line


def test_forwarded_headers_from_a_peer_that_is_not_nginx_are_ignored(stack):
    server, _ = stack
    status, headers, _ = post_from("127.0.0.3", server.url, "/gemini/generate", {"prompt": {"text": "hi"}},
                                   {"X-Forwarded-For": "203.0.113.9"})
    assert status == 200
    assert access_line(server, headers["X-Request-ID"]).startswith("127.0.0.3 ")


def test_a_stream_through_nginx_arrives_chunk_by_chunk(stack, emulator):
    server, nginx = stack
    delay = 0.3
    emulator.configure(stream_chunk_delay_ms=int(delay * 1000), stream_chunk_words=3)
    arrivals, events = [], []
    with requests.post(f"{nginx.url}/v1beta/models/{MODELS[0]}:streamGenerateContent?alt=sse",
                       json={"contents": [{"parts": [{"text": "Tell me a long story"}]}]},
                       headers={"x-goog-api-key": KEYS[0]}, stream=True, timeout=60) as response:
        assert response.status_code == 200
        for line in response.iter_lines(chunk_size=1):
            if line.startswith(b"data: "):
                arrivals.append(time.monotonic())
                events.append(json.loads(line[6:]))
    assert len(events) >= 3 and events[-1]["usageMetadata"]["totalTokenCount"] > 0
    # The emulator waits `delay` between chunks: had nginx (or the proxy) buffered the stream, every
    # event would arrive together at the end.
    gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:])]
    assert sum(1 for gap in gaps if gap >= delay / 2) >= len(gaps) - 1


def test_a_file_uploaded_through_nginx_sends_its_chunks_to_nginx(stack, tmp_path):
    # The upload URL the client is given names the address it reached the proxy by (nginx's), not
    # Gunicorn's, nor Gemini's.
    _, nginx = stack
    path = tmp_path / "notes.txt"
    path.write_bytes(b"tides " * 2000)
    client = genai.Client(api_key=KEYS[0], http_options=types.HttpOptions(base_url=nginx.url, api_version="v1beta"))
    started = requests.post(f"{nginx.url}/upload/v1beta/files", json={"file": {}}, timeout=30, headers={
        "x-goog-api-key": KEYS[0], "X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start"})
    assert started.headers["X-Goog-Upload-URL"].startswith(f"{nginx.url}/upload/v1beta/files?upload_id=")
    assert client.files.upload(file=str(path), config={"mime_type": "text/plain"}).size_bytes == 12000

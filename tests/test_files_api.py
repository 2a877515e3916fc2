"""The Files API through the proxy: google-genai uploads a file in chunks (resumable), gets, uses and
deletes it with the proxy as its base URL. The chunks come through the proxy, whichever worker takes
them, and go on with the server key the upload began with; the file's bytes are not stored."""
import hashlib

import pytest
import requests
from google import genai
from google.genai import types

from tests.conftest import KEYS, MODELS, rows, wait_for

pytestmark = pytest.mark.e2e

MODEL = MODELS[0]
CLIENT_KEY = "files-client-key-0123456789"  # a proxy client key: the proxy uses its own server keys
SIZE = 9 * 1024 * 1024  # two chunks of google-genai's 8 MB
START = {"X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
         "X-Goog-Upload-Header-Content-Length": "5", "X-Goog-Upload-Header-Content-Type": "text/plain"}


@pytest.fixture
def server(gunicorn):
    return gunicorn(GEMINI_API_KEY=f"{KEYS[0]},{KEYS[1]}", API_KEYS=CLIENT_KEY, WEB_CONCURRENCY=2)


def test_google_genai_uploads_uses_and_deletes_a_file_through_the_proxy(server, emulator, tmp_path):
    path = tmp_path / "notes.txt"
    content = (b"The sea is wide and the tide is high. " * (SIZE // 38 + 1))[:SIZE]
    path.write_bytes(content)
    client = genai.Client(api_key=CLIENT_KEY, http_options=types.HttpOptions(base_url=server.url, api_version="v1beta"))

    uploaded = client.files.upload(file=str(path), config={"mime_type": "text/plain", "display_name": "notes"})
    assert uploaded.size_bytes == SIZE and uploaded.sha256_hash == hashlib.sha256(content).hexdigest()
    assert client.files.get(name=uploaded.name).display_name == "notes"
    answer = client.models.generate_content(model=MODEL, contents=[uploaded, "Summarise the notes."])
    assert answer.text
    client.files.delete(name=uploaded.name)

    seen = [r for r in emulator.requests() if r["action"].startswith("upload.")]
    assert [r["action"] for r in seen] == ["upload.start", "upload.chunk", "upload.chunk"]
    assert sum(r["bytes"] for r in seen) == SIZE
    # One server key for the whole upload, though the pool hands out its two keys in turn.
    assert len({r["key"] for r in seen}) == 1 and seen[0]["key"] in KEYS[:2]
    assert all("gemini_proxy_key" not in r["query"] for r in seen)
    assert all(CLIENT_KEY not in str(r["headers"]) for r in seen)

    wait_for(lambda: rows(server.database_url, "SELECT route, status_code FROM request_log WHERE route LIKE "
                          "'/upload/%'") == [("/upload/v1beta/files", 200)] * 3, message="the upload's three records")
    (largest,) = rows(server.database_url, "SELECT max(length(request_body)) FROM exchange_bodies")[0]
    assert largest < 64 * 1024  # the file's chunks were not stored, only the JSON around them


def test_the_upload_url_a_client_is_given_points_at_the_proxy(server, emulator):
    began = requests.post(f"{server.url}/upload/v1beta/files", json={"file": {"displayName": "x"}},
                          headers={**START, "x-goog-api-key": CLIENT_KEY}, timeout=30)
    url = began.headers["X-Goog-Upload-URL"]
    assert began.status_code == 200 and url.startswith(f"{server.url}/upload/v1beta/files?upload_id=")
    assert "gemini_proxy_key=key-" in url  # a fingerprint, never the key
    assert KEYS[0] not in url and KEYS[1] not in url
    finished = requests.post(url, data=b"hello", timeout=30, headers={  # no key: the URL is the credential
        "X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0"})
    assert finished.headers["X-Goog-Upload-Status"] == "final" and finished.json()["file"]["sizeBytes"] == "5"

    # Once the upload has ended, its URL opens nothing, in either worker.
    again = [requests.post(url, data=b"hello", timeout=30, headers={
        "X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0"}) for _ in range(2)]
    assert [r.status_code for r in again] == [401, 401]
    assert again[0].json()["error"]["status"] == "UNAUTHENTICATED"

    # A client with its own Gemini key (and its proxy key) goes on with its own: a chunk that does not
    # carry it is sent with no key, never with a server key of another project.
    own = requests.post(f"{server.url}/upload/v1beta/files", json={"file": {}},
                        headers={**START, "x-goog-api-key": KEYS[2], "X-API-KEY": CLIENT_KEY}, timeout=30)
    own_url = own.headers["X-Goog-Upload-URL"]
    assert "&gemini_proxy_key=own." in own_url and KEYS[2] not in own_url
    assert requests.post(own_url, data=b"hello", timeout=30, headers={
        "X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0",
    }).headers["X-Goog-Upload-Status"] == "final"
    assert [(r["action"], r["key"]) for r in emulator.requests()[-2:]] == [("upload.start", KEYS[2]),
                                                                          ("upload.chunk", "")]

    # A URL the proxy did not sign is no credential; one naming a server key the proxy no longer holds
    # (with the client key that began it, past the check) cannot go on.
    fresh = requests.post(f"{server.url}/upload/v1beta/files", json={"file": {}},
                          headers={**START, "X-API-KEY": CLIENT_KEY}, timeout=30).headers["X-Goog-Upload-URL"]
    forged = fresh.replace("gemini_proxy_key=key-", "gemini_proxy_key=key-0000")
    chunk = {"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0"}
    assert requests.post(forged, data=b"hello", headers=chunk, timeout=30).status_code == 401
    refused = requests.post(forged, data=b"hello", headers={**chunk, "X-API-KEY": CLIENT_KEY}, timeout=30)
    assert refused.status_code == 409 and refused.json()["error"]["status"] == "ABORTED"
    wait_for(lambda: rows(server.database_url, "SELECT DISTINCT route FROM request_log WHERE status_code = 401")
             == [("/upload/v1beta/files",)], message="the refused chunks' records, under the upload route")


def test_an_upload_begun_while_the_proxy_was_open_stops_when_it_closes(gunicorn, emulator):
    server = gunicorn(GEMINI_API_KEY=KEYS[0], ADMIN_API_KEY="files-admin-key-0123456789", WEB_CONCURRENCY=2)
    began = requests.post(f"{server.url}/upload/v1beta/files", json={"file": {}}, headers=START, timeout=30)
    url = began.headers["X-Goog-Upload-URL"]
    issued = requests.post(f"{server.url}/admin/clients", json={"name": "first"}, timeout=30,
                           headers={"X-API-KEY": "files-admin-key-0123456789"})
    assert issued.status_code == 201  # the proxy is closed from now on
    chunk = requests.post(url, data=b"hello", timeout=30, headers={
        "X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0"})
    assert chunk.status_code == 401 and chunk.json()["error"]["status"] == "UNAUTHENTICATED"
    assert [r["action"] for r in emulator.requests()] == ["upload.start"]

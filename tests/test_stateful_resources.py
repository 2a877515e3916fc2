"""Stateful resources through a pool of three server keys: each keeps the key that made it, and its client.

One Gunicorn server (two gevent workers) with two client keys, against the emulator, which scopes every
resource to the key that made it as Google scopes it to the key's project: a call sent on another key is
refused there, so every 200 below is proof of affinity, and the emulator's request log says which key
each call went on with."""
import json
import uuid

import pytest
import requests

from proxy.upstream.keypool import fingerprint
from tests import processes
from tests.conftest import KEYS, rows, wait_for

pytestmark = pytest.mark.e2e

MODEL = "gemini-2.5-flash"
CLIENT_A = "stateful-client-a-0123456789"
CLIENT_B = "stateful-client-b-9876543210"
ADMIN_KEY = "stateful-admin-key-0123456789"
TEXT = {"parts": [{"text": "A long document about the history of the emulator, cached for later turns. " * 20}],
        "role": "user"}


def start(folder, emulator_process, url, keys):
    process = processes.start_gunicorn(
        str(folder), GEMINI_API_KEY=",".join(keys), GEMINI_BASE_URL=emulator_process.url, GEMINI_MODELS=MODEL,
        DATABASE_URL=url, API_KEYS=f"{CLIENT_A},{CLIENT_B}", ADMIN_API_KEY=ADMIN_KEY)
    process.database_url = url
    return process.wait_ready(log_marker="Worker ready", count=process.workers)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, emulator_process):
    folder = tmp_path_factory.mktemp("stateful")
    requests.post(f"{emulator_process.url}/_emulator/reset", timeout=10).raise_for_status()
    process = start(folder, emulator_process, f"sqlite:///{folder / 'proxy.db'}", KEYS)
    process.folder = folder
    yield process
    process.stop()


def call(gateway, method, path, client=CLIENT_A, **kwargs):
    return requests.request(method, f"{gateway.url}{path}", headers={"X-API-KEY": client, **kwargs.pop(
        "headers", {})}, timeout=60, **kwargs)


def keys_since(emulator, mark, fragment):
    """The server keys that calls whose target holds `fragment` reached the emulator with."""
    return [entry["headers"].get("x-goog-api-key") for entry in emulator.received()[mark:]
            if fragment in entry["target"]]


def make_cache(gateway, client=CLIENT_A):
    made = call(gateway, "POST", "/v1beta/cachedContents", client,
                json={"model": f"models/{MODEL}", "contents": [TEXT], "ttl": "600s"})
    assert made.status_code == 200, made.text
    return made.json()["name"]


def generate(gateway, body, client=CLIENT_A, model=MODEL):
    return call(gateway, "POST", f"/v1beta/models/{model}:generateContent", client, json=body)


def test_a_cache_keeps_its_key_for_every_generation_that_uses_it(gateway, emulator_process):
    name = make_cache(gateway)
    mark = len(emulator_process.received())
    answers = [generate(gateway, {"cachedContent": name, "contents": [{"parts": [{"text": f"turn {i}"}]}]})
               for i in range(9)]
    assert [answer.status_code for answer in answers] == [200] * 9, answers[-1].text
    assert all(answer.json()["usageMetadata"].get("cachedContentTokenCount") for answer in answers)
    used = keys_since(emulator_process, mark, ":generateContent")
    assert len(used) == 9 and len(set(used)) == 1
    assert call(gateway, "GET", f"/v1beta/{name}").status_code == 200


def test_another_client_cannot_read_use_list_or_delete_a_cache(gateway, emulator_process):
    name = make_cache(gateway)
    mark = len(emulator_process.received())
    refused = [call(gateway, "GET", f"/v1beta/{name}", CLIENT_B),
               call(gateway, "DELETE", f"/v1beta/{name}", CLIENT_B),
               call(gateway, "PATCH", f"/v1beta/{name}", CLIENT_B, json={"ttl": "60s"}),
               generate(gateway, {"cachedContent": name, "contents": [{"parts": [{"text": "hi"}]}]}, CLIENT_B)]
    assert [answer.status_code for answer in refused] == [404] * 4
    assert {answer.json()["error"]["status"] for answer in refused} == {"NOT_FOUND"}
    assert emulator_process.received()[mark:] == []  # refused before any key was spent
    listed = call(gateway, "GET", "/v1beta/cachedContents", CLIENT_B).json()
    assert name not in [cache["name"] for cache in listed.get("cachedContents", [])]
    assert call(gateway, "GET", f"/v1beta/{name}").status_code == 200


def test_a_list_pages_through_every_key_that_holds_the_clients_own(gateway, emulator_process):
    mine = {make_cache(gateway, CLIENT_B) for _ in range(5)}
    theirs = make_cache(gateway, CLIENT_A)
    seen, token, pages = [], None, 0
    while True:
        params = {"pageSize": 2, **({"pageToken": token} if token else {})}
        page = call(gateway, "GET", "/v1beta/cachedContents", CLIENT_B, params=params)
        assert page.status_code == 200, page.text
        seen += [cache["name"] for cache in page.json().get("cachedContents", [])]
        token, pages = page.json().get("nextPageToken"), pages + 1
        if not token:
            break
        assert pages < 20
    assert sorted(seen) == sorted(mine) and theirs not in seen
    forged = call(gateway, "GET", "/v1beta/cachedContents", CLIENT_B, params={"pageToken": "eyJrIjoibm8ifQ"})
    assert forged.status_code == 400 and forged.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_a_deleted_cache_is_gone_for_its_client_too(gateway, emulator_process):
    name = make_cache(gateway)
    assert call(gateway, "DELETE", f"/v1beta/{name}").status_code == 200
    # The worker that saw the delete answers 404 itself; another may still hold the cache's owner in its own
    # memory, and sends the call on to the cache's key, where Google's answer is its refusal of a deleted one.
    reads = [call(gateway, "GET", f"/v1beta/{name}") for _ in range(6)]
    assert {read.status_code for read in reads} <= {403, 404}, [read.text for read in reads]
    assert name not in json.dumps(call(gateway, "GET", "/v1beta/cachedContents").json())


def test_a_batch_is_read_on_its_key_by_its_client_only(gateway, emulator_process):
    made = call(gateway, "POST", f"/v1beta/models/{MODEL}:batchGenerateContent", json={"batch": {
        "display_name": "nightly", "input_config": {"requests": {"requests": [
            {"request": {"contents": [{"parts": [{"text": f"question {i}"}]}]}, "metadata": {"key": str(i)}}
            for i in range(3)]}}}})
    assert made.status_code == 200, made.text
    name = made.json()["name"]
    mark = len(emulator_process.received())
    polls = [call(gateway, "GET", f"/v1beta/{name}") for _ in range(5)]
    assert [poll.status_code for poll in polls] == [200] * 5
    assert polls[-1].json().get("done") is True
    assert len(set(keys_since(emulator_process, mark, name))) == 1
    assert call(gateway, "GET", f"/v1beta/{name}", CLIENT_B).status_code == 404
    assert call(gateway, "POST", f"/v1beta/{name}:cancel", CLIENT_B).status_code == 404
    listed = call(gateway, "GET", "/v1beta/batches", CLIENT_B).json()
    assert name not in json.dumps(listed)


def upload(gateway, data, client=CLIENT_A):
    began = call(gateway, "POST", "/upload/v1beta/files", client, json={"file": {"displayName": "notes"}}, headers={
        "X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
        "X-Goog-Upload-Header-Content-Length": str(len(data)), "X-Goog-Upload-Header-Content-Type": "text/plain"})
    assert began.status_code == 200, began.text
    done = requests.post(began.headers["X-Goog-Upload-URL"], data=data, timeout=60, headers={
        "X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0"})
    assert done.status_code == 200, done.text
    return done.json()["file"]


def test_a_file_is_read_used_and_downloaded_on_its_key_by_its_client_only(gateway, emulator_process):
    data = f"notes {uuid.uuid4()}".encode()
    file = upload(gateway, data)
    name = file["name"]
    mark = len(emulator_process.received())
    reads = [call(gateway, "GET", f"/v1beta/{name}") for _ in range(6)]
    assert [read.status_code for read in reads] == [200] * 6
    used = generate(gateway, {"contents": [{"parts": [{"text": "Summarise"}, {"fileData": {
        "fileUri": file["uri"], "mimeType": "text/plain"}}]}]})
    assert used.status_code == 200, used.text
    # As at Google, an uploaded file is not downloadable: its own project says so (another's would say 403).
    downloaded = call(gateway, "GET", f"/download/v1beta/{name}:download", params={"alt": "media"})
    assert downloaded.status_code == 400 and "generated" in downloaded.json()["error"]["message"]
    assert len(set(keys_since(emulator_process, mark, name.split("/")[1]) +
                   keys_since(emulator_process, mark, ":generateContent"))) == 1
    assert call(gateway, "GET", f"/v1beta/{name}", CLIENT_B).status_code == 404
    assert call(gateway, "GET", f"/download/v1beta/{name}:download", CLIENT_B,
                params={"alt": "media"}).status_code == 404
    assert generate(gateway, {"contents": [{"parts": [{"fileData": {"fileUri": file["uri"]}}]}]},
                    CLIENT_B).status_code == 404
    assert name not in json.dumps(call(gateway, "GET", "/v1beta/files", CLIENT_B).json())


def test_a_resource_on_a_key_that_left_the_pool_is_a_409(gateway, emulator_process, tmp_path):
    name = make_cache(gateway)
    (owner,) = [resource["key_id"] for resource in admin_resources(gateway, kind="cachedContents", limit=1000)
                if resource["name"] == name]
    others = [key for key in KEYS if fingerprint(key) != owner]
    assert len(others) == len(KEYS) - 1
    smaller = start(tmp_path, emulator_process, gateway.database_url, others)  # the same database
    try:
        mark = len(emulator_process.received())
        answers = [call(smaller, "GET", f"/v1beta/{name}"),
                   generate(smaller, {"cachedContent": name, "contents": [{"parts": [{"text": "hi"}]}]})]
        assert [answer.status_code for answer in answers] == [409, 409]
        assert {answer.json()["error"]["status"] for answer in answers} == {"ABORTED"}
        assert "no longer holds" in answers[0].json()["error"]["message"]
        assert emulator_process.received()[mark:] == []
    finally:
        smaller.stop()


def admin_resources(gateway, **params):
    listed = requests.get(f"{gateway.url}/admin/resources", params=params, headers={"X-API-KEY": ADMIN_KEY},
                          timeout=30)
    assert listed.status_code == 200, listed.text
    return listed.json()


def test_the_admin_sees_every_clients_resources(gateway):
    a, b = make_cache(gateway, CLIENT_A), make_cache(gateway, CLIENT_B)
    listed = {resource["name"]: resource for resource in admin_resources(gateway, kind="cachedContents",
                                                                         limit=1000)}
    assert a in listed and b in listed and listed[a]["client_id"] != listed[b]["client_id"]
    assert requests.get(f"{gateway.url}/admin/resources", headers={"X-API-KEY": CLIENT_A},
                        timeout=30).status_code in (401, 403)


def test_openai_errors_come_in_openais_shape_and_the_record_keeps_googles(gateway):
    answer = call(gateway, "POST", "/v1beta/openai/chat/completions", json={
        "model": "gemini-no-such-model", "messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 404
    error = answer.json()["error"]
    assert error["type"] == "not_found_error" and "gemini-no-such-model" in error["message"]
    assert set(error) == {"message", "type", "code", "param"}
    wait_for(lambda: rows(gateway.database_url, "SELECT count(*) FROM request_log WHERE route = "
                          "'/v1beta/openai/chat/completions' AND status_code = 404") >= [(1,)],
             message="the error recorded")

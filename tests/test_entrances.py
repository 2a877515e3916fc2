"""The pass-through's entrances under attack: paths, query keys, repeated credentials and upload URLs.

One Gunicorn server (two workers) with client keys on, ALLOWED_MODELS set and the emulator behind it.
Every test asserts what reached the emulator (its raw request log), not only what the client saw."""
import http.client
import json
import uuid
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from hypothesis import HealthCheck, given, settings, strategies as st

from proxy.wire import routes
from tests import processes
from tests.conftest import KEYS, MODELS, rows, wait_for, wait_settled

pytestmark = pytest.mark.e2e

ALLOWED = MODELS[0]
DISALLOWED = "gemini-2.5-pro"
CLIENT_KEY = "entrance-client-key-0123456789"
OTHER_CLIENT_KEY = "entrance-other-client-key-987654"
ADMIN_KEY = "entrance-admin-key-0123456789"
SERVER_KEY = KEYS[0]
BODY = json.dumps({"contents": [{"parts": [{"text": "hello"}]}]}).encode()
START = {"X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
         "X-Goog-Upload-Header-Content-Length": "5", "X-Goog-Upload-Header-Content-Type": "text/plain"}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, emulator_process):
    folder = tmp_path_factory.mktemp("entrances")
    url = f"sqlite:///{folder / 'proxy.db'}"
    process = processes.start_gunicorn(
        str(folder), GEMINI_API_KEY=SERVER_KEY, GEMINI_BASE_URL=emulator_process.url,
        GEMINI_MODELS=",".join(MODELS), DATABASE_URL=url, API_KEYS=f"{CLIENT_KEY},{OTHER_CLIENT_KEY}",
        ADMIN_API_KEY=ADMIN_KEY, ALLOWED_MODELS=ALLOWED, LOG_LEVEL="DEBUG")
    process.database_url, process.folder = url, folder
    yield process.wait_ready(log_marker="Worker ready", count=process.workers)
    process.stop()


def send(server, method, target, headers=(), body=b""):
    """One request with the target sent byte for byte and headers as given, repeats included."""
    parts = urlsplit(server.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.putrequest(method, target, skip_host=False, skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value)
        if body or method in ("POST", "PUT"):
            connection.putheader("Content-Type", "application/json")
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def received_since(emulator, mark):
    return emulator.received()[mark:]


def generation_reached(received):
    return [r for r in received if "Content" in r["target"] or "completions" in r["target"]]


def upload_url(server, key=CLIENT_KEY):
    began = requests.post(f"{server.url}/upload/v1beta/files", json={"file": {"displayName": "x"}},
                          headers={**START, "X-API-KEY": key}, timeout=30)
    assert began.status_code == 200, began.text
    return began.headers["X-Goog-Upload-URL"]


ESCAPES = ["%2e%2e", "%2E%2E", ".%2e", "%2e.", "%252e%252e", "..%2f..", "%2e%2e%5c%2e%2e"]


@pytest.mark.parametrize("dots", ESCAPES)
def test_an_upload_url_opens_no_other_path(gateway, emulator, dots):
    url = upload_url(gateway)
    query = urlsplit(url).query
    mark = len(emulator.received())
    status, _, body = send(gateway, "POST", f"/upload/v1beta/{dots}/{dots}/v1beta/models/{ALLOWED}:generateContent"
                           f"?{query}", headers=[("X-Goog-Upload-Command", "upload, finalize")], body=BODY)
    assert status in (400, 404) and json.loads(body)["error"]["status"] in ("INVALID_ARGUMENT", "NOT_FOUND")
    assert received_since(emulator, mark) == []


def test_an_upload_url_serves_only_its_chunks_until_it_ends(gateway, emulator):
    url = upload_url(gateway)
    target = url[len(gateway.url):]
    mark = len(emulator.received())
    # Its grant is for chunk and status calls only: not a new start, not a read, not another upload's id.
    assert send(gateway, "POST", target, [("X-Goog-Upload-Command", "start")], b"{}")[0] == 401
    assert send(gateway, "GET", target)[0] == 401
    other_id = target.replace("upload_id=", "upload_id=0", 1)
    assert send(gateway, "POST", other_id, [("X-Goog-Upload-Command", "upload, finalize")], b"hello")[0] == 401
    assert received_since(emulator, mark) == []
    # Its own chunk goes on, charged to the client that began it.
    status, headers, _ = send(gateway, "POST", target, [("X-Goog-Upload-Command", "upload, finalize"),
                                                        ("X-Goog-Upload-Offset", "0")], b"hello")
    assert status == 200 and headers["X-Goog-Upload-Status"] == "final"
    # Then it has ended: refused on both workers, several times over.
    assert {send(gateway, "POST", target, [("X-Goog-Upload-Command", "query")])[0] for _ in range(4)} == {401}
    assert [r["method"] for r in received_since(emulator, mark)] == ["POST"]
    wait_for(lambda: rows(gateway.database_url, "SELECT count(*) FROM request_log WHERE route = "
                          "'/upload/v1beta/files' AND status_code = 200 AND client_id IS NULL") == [(0,)]
             and rows(gateway.database_url, "SELECT count(*) FROM request_log WHERE route = '/upload/v1beta/files'"
                      " AND status_code = 200") >= [(2,)], message="the upload charged to its client")


def test_an_upload_url_dies_with_its_client(gateway, emulator):
    key = requests.post(f"{gateway.url}/admin/clients", json={"name": "short-lived"},
                        headers={"X-API-KEY": ADMIN_KEY}, timeout=30).json()
    url = upload_url(gateway, key["api_key"])
    revoked = requests.post(f"{gateway.url}/admin/clients/{key['id']}/revoke", headers={"X-API-KEY": ADMIN_KEY},
                            timeout=30)
    assert revoked.status_code == 200
    mark = len(emulator.received())
    chunk = requests.post(url, data=b"hello", headers={"X-Goog-Upload-Command": "upload, finalize",
                                                       "X-Goog-Upload-Offset": "0"}, timeout=30)
    assert chunk.status_code == 401 and "revoked" in chunk.json()["error"]["message"]
    assert received_since(emulator, mark) == []


PATH_ESCAPES = ["%2e%2e", "%2E%2e", ".%2e", "..", "%252e%252e", "%2e%2e%2fmodels"]


@pytest.mark.parametrize("dots", PATH_ESCAPES)
def test_allowed_models_hold_against_dot_segments(gateway, emulator, dots):
    mark = len(emulator.received())
    status, _, body = send(gateway, "POST", f"/v1beta/models/{dots}/models/{DISALLOWED}:generateContent",
                           [("X-API-KEY", CLIENT_KEY)], BODY)
    assert status in (400, 404), body
    assert json.loads(body)["error"]["status"] in ("INVALID_ARGUMENT", "NOT_FOUND")
    assert received_since(emulator, mark) == []


@pytest.mark.parametrize("segment", ["gemini-2.5-flash%2f..%2f..%2fgemini-2.5-pro", "gemini-2.5-flash%5cx",
                                     "%E2%80%AE", "%00", "%FF", "gemini%0d%0aX-Injected:%201", "gemini%202.5"])
def test_a_model_that_cannot_be_a_name_is_refused_before_any_call_and_recorded(gateway, emulator, segment):
    mark = len(emulator.received())
    status, headers, body = send(gateway, "POST", f"/v1beta/models/{segment}:generateContent",
                                 [("X-API-KEY", CLIENT_KEY)], BODY)
    assert status == 400 and json.loads(body)["error"]["status"] == "INVALID_ARGUMENT"
    assert "X-Gemini-Model" not in headers
    assert received_since(emulator, mark) == []
    wait_for(lambda: rows(gateway.database_url, "SELECT count(*) FROM request_log WHERE route = '/{unparsed}' "
                          "AND status_code = 400")[0][0] >= 1, message="the refusal's record")


def test_the_model_checked_is_the_model_forwarded(gateway, emulator):
    mark = len(emulator.received())
    status, _, _ = send(gateway, "POST", f"/v1beta/models/{DISALLOWED}:generateContent",
                        [("X-API-KEY", CLIENT_KEY)], BODY)
    assert status == 400
    status, _, _ = send(gateway, "POST", f"/v1beta/models/{ALLOWED.replace('-', '%2D')}:generateContent",
                        [("X-API-KEY", CLIENT_KEY)], BODY)
    assert status == 200
    reached = received_since(emulator, mark)
    assert [r["target"] for r in reached] == [f"/v1beta/models/{ALLOWED}:generateContent"]


@pytest.mark.parametrize("name", ["k%65y", "%6B%65%79", "KEY", "Key", "%4b%45%59"])
def test_a_query_key_in_any_spelling_is_a_credential(gateway, emulator, name):
    mark = len(emulator.received())
    trace = uuid.uuid4().hex
    # The proxy key in the query, spelled with escapes: it admits the client and never travels on.
    status, _, body = send(gateway, "POST", f"/v1beta/models/{ALLOWED}:generateContent?{name}={CLIENT_KEY}"
                           f"&trace={trace}", body=BODY)
    assert status == 200, body
    reached = received_since(emulator, mark)
    assert len(reached) == 1 and CLIENT_KEY not in json.dumps(reached)
    assert reached[0]["headers"]["x-goog-api-key"] == SERVER_KEY and "key" not in reached[0]["target"].lower()
    recorded = (f"SELECT r.request_id, e.query FROM request_log r JOIN exchanges e ON e.request_log_id = r.id "
                f"WHERE e.query LIKE '%{trace}%'")
    wait_for(lambda: rows(gateway.database_url, recorded), message="the exchange")
    ((request_id, query),) = rows(gateway.database_url, recorded)
    assert query == f"trace={trace}"
    shown = requests.get(f"{gateway.url}/analytics/requests/{request_id}", headers={"X-API-KEY": ADMIN_KEY},
                         timeout=30)
    assert shown.status_code == 200 and CLIENT_KEY not in shown.text


@pytest.mark.parametrize("headers", [
    [("x-goog-api-key", CLIENT_KEY), ("x-goog-api-key", KEYS[2])],
    [("X-API-KEY", CLIENT_KEY), ("X-API-KEY", OTHER_CLIENT_KEY)],
    [("Authorization", f"Bearer {CLIENT_KEY}"), ("Authorization", f"Bearer {KEYS[2]}")],
    [("x-goog-api-key", CLIENT_KEY), ("Authorization", f"Bearer {KEYS[2]}")],
])
def test_repeated_credentials_are_refused(gateway, emulator, headers):
    mark = len(emulator.received())
    status, _, body = send(gateway, "POST", f"/v1beta/models/{ALLOWED}:generateContent", headers, BODY)
    assert status == 400 and json.loads(body)["error"]["status"] == "INVALID_ARGUMENT"
    assert received_since(emulator, mark) == []


def test_one_key_in_two_slots_is_one_credential_and_goes_on_in_one(gateway, emulator):
    # The Gemini CLI's bearer mode sends its key both as Bearer and as x-goog-api-key.
    mark = len(emulator.received())
    status, _, _ = send(gateway, "POST", f"/v1beta/models/{ALLOWED}:generateContent",
                        [("X-API-KEY", CLIENT_KEY), ("x-goog-api-key", KEYS[2]), ("Authorization", f"Bearer {KEYS[2]}")],
                        BODY)
    assert status == 200
    (reached,) = received_since(emulator, mark)
    assert reached["headers"].get("x-goog-api-key") == KEYS[2] and "authorization" not in reached["headers"]


@pytest.mark.parametrize("query", [f"key={CLIENT_KEY}&key={KEYS[2]}", f"key={KEYS[2]}&k%65y={CLIENT_KEY}",
                                   "access_token=ya29.x"])
def test_repeated_query_credentials_are_refused(gateway, emulator, query):
    mark = len(emulator.received())
    status, _, _ = send(gateway, "POST", f"/v1beta/models/{ALLOWED}:generateContent?{query}",
                        [("X-API-KEY", CLIENT_KEY)], BODY)
    assert status == 400
    assert received_since(emulator, mark) == []


@pytest.mark.parametrize("gemini_slot", [("x-goog-api-key", CLIENT_KEY), ("x-goog-api-key", OTHER_CLIENT_KEY),
                                         ("Authorization", f"Bearer {OTHER_CLIENT_KEY}")])
def test_a_proxy_key_is_never_sent_on(gateway, emulator, gemini_slot):
    mark = len(emulator.received())
    status, _, _ = send(gateway, "POST", f"/v1beta/models/{ALLOWED}:generateContent",
                        [("X-API-KEY", CLIENT_KEY), gemini_slot], BODY)
    assert status == 401
    assert received_since(emulator, mark) == []


def test_a_clients_own_gemini_key_goes_on_alone(gateway, emulator):
    mark = len(emulator.received())
    status, _, _ = send(gateway, "POST", f"/v1beta/models/{ALLOWED}:generateContent?k%65y={KEYS[2]}",
                        [("X-API-KEY", CLIENT_KEY)], BODY)
    assert status == 200
    (reached,) = received_since(emulator, mark)
    assert reached["target"] == f"/v1beta/models/{ALLOWED}:generateContent?key={KEYS[2]}"
    assert CLIENT_KEY not in json.dumps(reached) and SERVER_KEY not in json.dumps(reached)


@pytest.mark.parametrize("body", [b'{"contents": ' + b"[" * 5000 + b"]" * 5000 + b"}",
                                  b'{"contents": [], "generationConfig": {"topP": NaN}}',
                                  b'{"generationConfig": {"temperature": Infinity}}', b'{"contents": [', b"\xff\xfe"])
def test_a_body_that_is_not_bounded_json_is_refused_before_any_call(gateway, emulator, body):
    mark = len(emulator.received())
    status, _, answer = send(gateway, "POST", f"/v1beta/models/{ALLOWED}:generateContent",
                             [("X-API-KEY", CLIENT_KEY)], body)
    assert status == 400 and json.loads(answer)["error"]["status"] == "INVALID_ARGUMENT"
    assert received_since(emulator, mark) == []


@pytest.mark.parametrize("model", ["models/gemini-2.5-pro", "gemini-2.5-flash/../gemini-2.5-pro", "\u202egemini",
                                   None, 7])
def test_a_body_model_is_governed_like_a_path_model(gateway, emulator, model):
    mark = len(emulator.received())
    payload = {"messages": [{"role": "user", "content": "hi"}]}
    if model is not None:
        payload["model"] = model
    status, _, answer = send(gateway, "POST", "/v1beta/openai/chat/completions",
                             [("Authorization", f"Bearer {CLIENT_KEY}")], json.dumps(payload).encode())
    assert status == 400, answer
    assert received_since(emulator, mark) == []


PIECES = ["v1beta", "v1", "upload", "models", "files", "cachedContents", "openai", "chat", "completions",
          "tunedModels", "operations", ALLOWED, DISALLOWED, f"{ALLOWED}:generateContent", f"{DISALLOWED}:countTokens",
          ":streamGenerateContent", "..", ".", "%2e", "%2E", "%2e%2e", ".%2e", "%252e%252e", "%2f", "%2F", "%5c",
          "%5C", "%00", "%0a", "%E2%80%AE", "%FF", "%3A", "%3Agenerate", "", "x", "a%20b", "%"]
NAMES = ["key", "KEY", "Key", "k%65y", "%6B%65%79", "%6b%65%79", "alt", "upload_id", "gemini_proxy_key",
         "access_token", "$alt", "%00", "trace", "k%2565y"]
VALUES = [CLIENT_KEY, OTHER_CLIENT_KEY, KEYS[2], "sse", "x", "", f"%26key%3D{CLIENT_KEY}", "%0d%0a", "%FF"]
HEADERS = [("X-API-KEY", CLIENT_KEY), ("X-API-KEY", OTHER_CLIENT_KEY), ("x-goog-api-key", CLIENT_KEY),
           ("x-goog-api-key", OTHER_CLIENT_KEY), ("x-goog-api-key", KEYS[2]), ("x-goog-api-key", ""),
           ("Authorization", f"Bearer {CLIENT_KEY}"), ("Authorization", f"Bearer {KEYS[2]}"),
           ("X-Goog-Upload-Command", "upload, finalize"), ("X-Goog-Upload-Command", "start")]
PROXY_KEYS = (CLIENT_KEY, OTHER_CLIENT_KEY)

paths = st.lists(st.sampled_from(PIECES), min_size=1, max_size=6).map(lambda pieces: "/" + "/".join(pieces))
native_paths = st.tuples(st.sampled_from(["/v1beta/", "/v1/", "/upload/v1beta/"]), paths).map(
    lambda parts: parts[0] + parts[1].lstrip("/"))
queries = st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(VALUES)), max_size=4).map(
    lambda pairs: "&".join(f"{name}={value}" for name, value in pairs))
header_sets = st.lists(st.sampled_from(HEADERS), max_size=4)


def _reached_only_the_parsed_api(reached):
    for request in reached:
        target = request["target"]
        path, _, query = target.partition("?")
        route = routes.parse(path)  # raises if anything but Gemini's API reached it
        assert route.upstream() == path, target  # built from the parsed parts: nothing to re-decode
        assert route.model in (None, ALLOWED), target
        names = [name.lower() for name, _ in parse_qsl(query, keep_blank_values=True)]
        assert "gemini_proxy_key" not in names and names.count("key") <= 1, target
        assert not [key for key in PROXY_KEYS if key in json.dumps(request)], target


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          derandomize=True)
@given(method=st.sampled_from(["GET", "POST"]), path=native_paths, query=queries, headers=header_sets)
def test_generated_requests_reach_nothing_but_the_parsed_api(gateway, emulator, method, path, query, headers):
    emulator.reset()
    target = path + (f"?{query}" if query else "")
    status, _, body = send(gateway, method, target, headers, BODY if method == "POST" else b"")
    assert status < 500, (target, headers, body)
    assert body[:1] in (b"{", b"["), (target, body)  # an answer in Gemini's shape, never an HTML page
    _reached_only_the_parsed_api(emulator.received())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          derandomize=True)
@given(path=st.text(alphabet="abv1et/.%25:2eEfF\\x0", min_size=1, max_size=40), query=queries)
def test_arbitrary_paths_are_refused_in_gemini_shape(gateway, emulator, path, query):
    emulator.reset()
    target = "/v1beta/" + path + (f"?{query}" if query else "")
    status, _, body = send(gateway, "POST", target, [("X-API-KEY", CLIENT_KEY)], BODY)
    assert status < 500, (target, body)
    _reached_only_the_parsed_api(emulator.received())


def test_what_is_stored_and_logged_holds_no_key(gateway):
    wait_settled(gateway, ADMIN_KEY)  # the writer's last batch is in
    secrets = [CLIENT_KEY, OTHER_CLIENT_KEY, ADMIN_KEY, SERVER_KEY, KEYS[2]]
    stored = b"".join(path.read_bytes() for path in gateway.folder.rglob("*") if path.is_file()
                     and not path.name.endswith(".log"))
    assert stored and not [secret for secret in secrets if secret.encode() in stored]
    with open(gateway.log_path, "rb") as log:
        logged = log.read()
    assert logged and not [secret for secret in secrets if secret.encode() in logged]

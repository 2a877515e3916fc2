"""Bad input on the proxy's own API, through Gunicorn with two workers: a clear 4xx in the API's error
shape, recorded, never a 500, and nothing invalid reaches Gemini."""
import pytest
import requests
import schemathesis

from tests import processes
from tests.conftest import KEYS, MODELS, rows, wait_for
from tests.faulty_wsgi import DEFECT_MARKER

pytestmark = pytest.mark.e2e

CLIENT_KEY = "client-key-for-input-tests-0123"
ADMIN_KEY = "admin-key-for-input-tests-01234"
CLIENT = {"X-API-KEY": CLIENT_KEY, "Content-Type": "application/json"}
ADMIN = {"X-API-KEY": ADMIN_KEY, "Content-Type": "application/json"}
JSON_APIS = [("/gemini/generate", CLIENT), ("/gemini-proxy", CLIENT), ("/admin/clients", ADMIN)]


def start(folder, emulator_url, **settings):
    url = f"sqlite:///{folder / 'proxy.db'}"
    process = processes.start_gunicorn(str(folder), GEMINI_API_KEY=KEYS[0], GEMINI_BASE_URL=emulator_url,
                                       GEMINI_MODELS=",".join(MODELS), DATABASE_URL=url, ACCESS_LOG="false",
                                       API_KEYS=CLIENT_KEY, ADMIN_API_KEY=ADMIN_KEY, **settings)
    process.database_url = url
    return process.wait_ready(log_marker="Worker ready", count=process.workers)


@pytest.fixture(scope="module")
def server(tmp_path_factory, emulator_process):
    process = start(tmp_path_factory.mktemp("api-input"), emulator_process.url)
    yield process
    process.stop()


def post(server, path, body, headers):
    return requests.post(f"{server.url}{path}", data=body, headers=headers, timeout=30)


def error_of(response):
    """(code, message) of either error shape: the proxy's own, or /gemini-proxy's legacy one."""
    body = response.json()
    if "errors" in body:
        return body["errors"][0]["code"], body["errors"][0]["message"]
    return body["error"]["code"], body["error"]["message"]


def recorded_error(server, response):
    """The request log's error code for the request `response` answered (the write-behind takes a moment)."""
    sql = f"SELECT error_code FROM request_log WHERE request_id = '{response.headers['X-Request-ID']}'"
    wait_for(lambda: rows(server.database_url, sql), timeout=15, message="the request's record")
    return rows(server.database_url, sql)[0][0]


@pytest.mark.parametrize("path,headers", JSON_APIS, ids=[path for path, _ in JSON_APIS])
@pytest.mark.parametrize("body", [
    "[" * 100_000 + "]" * 100_000,  # past Python's recursion limit: was a RecursionError
    '{"prompt": {"text": "hi"}, "model": ' + "[" * 200 + "]" * 200 + "}",  # inside a valid body
], ids=["deep-array", "deep-field"])
def test_deeply_nested_json_is_malformed_json_naming_the_depth_limit(server, emulator, path, headers, body):
    response = post(server, path, body, headers)
    assert response.status_code == 400, response.text
    code, message = error_of(response)
    assert code == ("INVALID_REQUEST" if path == "/gemini-proxy" else "MALFORMED_JSON")
    assert "deeper than 64 levels" in message
    if not path.startswith("/admin"):  # operator endpoints are not in the request log
        assert recorded_error(server, response) == "MALFORMED_JSON"
    assert emulator.stats()["total"] == 0


@pytest.mark.parametrize("path,body,headers", [
    ("/gemini/generate", '{"prompt": {"text": "hi"}, "generation_config": {"top_p": NaN}}', CLIENT),
    ("/gemini/generate", '{"prompt": {"text": "hi"}, "generation_config": {"top_k": Infinity}}', CLIENT),
    ("/gemini/generate", '{"prompt": {"text": "hi"}, "generation_config": {"temperature": -Infinity}}', CLIENT),
    ("/gemini/generate", '{"prompt": {"text": "hi"}, "system_instruction": "x", "extra": 1e400}', CLIENT),
    ("/gemini-proxy", '{"prompt": "hi", "model": NaN}', CLIENT),
    ("/admin/clients", '{"name": "nan", "daily_token_quota": NaN}', ADMIN),
    ("/admin/clients", '{"name": "inf", "daily_token_quota": 1e999}', ADMIN),
], ids=["top_p-NaN", "top_k-Infinity", "temperature-minus-Infinity", "1e400", "compat-NaN", "admin-NaN",
        "admin-1e999"])
def test_nan_and_infinity_are_refused_on_every_api(server, emulator, path, body, headers):
    response = post(server, path, body, headers)
    assert response.status_code == 400, response.text
    code, message = error_of(response)
    assert code == ("INVALID_REQUEST" if path == "/gemini-proxy" else "MALFORMED_JSON")
    assert "NaN" in message or "Infinity" in message or "too large for a double" in message
    assert emulator.stats()["total"] == 0  # top_p: NaN used to reach Gemini


@pytest.mark.parametrize("path,field,headers", [
    ("/gemini/generate", '{"prompt": {"text": "hi"}, "generation_config": {"top_k": %s}}', CLIENT),
    ("/admin/clients", '{"name": "huge", "daily_token_quota": %s}', ADMIN),
], ids=["top_k", "daily_token_quota"])
def test_an_endless_integer_literal_is_refused_before_int_parses_it(server, emulator, path, field, headers):
    response = post(server, path, field % ("9" * 5000), headers)
    assert response.status_code == 400, response.text
    assert error_of(response) == ("MALFORMED_JSON", "The body holds an integer of more than 100 digits.")
    assert emulator.stats()["total"] == 0


@pytest.mark.parametrize("quota", [2**31, 2**63, 10**99], ids=["2**31", "2**63", "10**99"])
def test_a_token_quota_past_the_database_integer_is_a_400_not_an_overflow(server, quota):
    response = post(server, "/admin/clients", f'{{"name": "big", "daily_token_quota": {quota}}}', ADMIN)
    assert response.status_code == 400, response.text
    body = response.json()["error"]
    assert body["code"] == "INVALID_REQUEST"
    assert "maximum of 2147483647" in body["details"]["daily_token_quota"]


def test_the_largest_token_quota_the_schema_allows_is_stored(server):
    response = post(server, "/admin/clients", f'{{"name": "biggest", "daily_token_quota": {2**31 - 1}}}', ADMIN)
    assert response.status_code == 201, response.text
    assert response.json()["daily_token_quota"] == 2**31 - 1


def test_a_rate_limit_longer_than_its_column_is_a_400(server):
    limit = ";".join(["1000/day"] * 12)  # 107 characters, each part valid: the column holds 100
    response = post(server, "/admin/clients", f'{{"name": "long", "rate_limit": "{limit}"}}', ADMIN)
    assert response.status_code == 400, response.text
    assert "rate_limit" in response.json()["error"]["details"]


@pytest.mark.parametrize("client_id", [2**63, 10**4000 - 1], ids=["2**63", "4000-digits"])
@pytest.mark.parametrize("action", ["revoke", "rotate"])
def test_a_client_id_past_any_database_integer_is_not_found(server, client_id, action):
    response = post(server, f"/admin/clients/{client_id}/{action}", "", {"X-API-KEY": ADMIN_KEY})
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize("query", ["status=99", "status=abc", "status=", "client=0", f"client={2**63}", "page=0",
                                   f"page={10**9 + 1}", "page_size=201", "page_size=1.5",
                                   "stauts=500"])  # a misspelt filter would report on every request
def test_analytics_parameters_out_of_range_or_unknown_are_400(server, query):
    response = requests.get(f"{server.url}/analytics/requests?{query}", headers=ADMIN, timeout=30)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "INVALID_REQUEST"


def test_analytics_documents_its_integer_parameters_as_integers(server):
    spec = requests.get(f"{server.url}/swagger.json", timeout=30).json()
    parameters = {p["name"]: p for p in spec["paths"]["/analytics/requests"]["get"]["parameters"]}
    for name, low, high in (("status", 100, 599), ("client", 1, 2**63 - 1), ("page", 1, 10**9),
                            ("page_size", 1, 200)):
        assert (parameters[name]["type"], parameters[name]["minimum"], parameters[name]["maximum"]) == \
            ("integer", low, high), name


@pytest.mark.parametrize("method,path,headers,allowed,shape", [
    ("GET", "/gemini/generate", CLIENT, "OPTIONS, POST", "error"),
    ("DELETE", "/admin/clients", ADMIN, "GET, HEAD, OPTIONS, POST", "error"),
    ("PUT", "/gemini-proxy", CLIENT, "OPTIONS, POST", "errors"),
    ("POST", "/analytics/summary", ADMIN, "GET, HEAD, OPTIONS", "error"),
])
def test_a_405_says_which_methods_are_allowed(server, method, path, headers, allowed, shape):
    response = requests.request(method, f"{server.url}{path}", headers=headers, timeout=30)
    assert response.status_code == 405
    assert response.headers["Allow"] == allowed
    assert shape in response.json()  # still the API's own JSON error shape


def test_request_detail_matches_its_schema_with_and_without_an_exchange(server, emulator):
    generated = post(server, "/gemini/generate", '{"prompt": {"text": "hi"}}', CLIENT)
    native = requests.post(f"{server.url}/v1beta/models/{MODELS[0]}:generateContent",
                           json={"contents": [{"parts": [{"text": "hi"}]}]},
                           headers={"X-API-KEY": CLIENT_KEY}, timeout=30)
    assert generated.status_code == native.status_code == 200
    operation = schemathesis.openapi.from_url(f"{server.url}/swagger.json")["/analytics/requests/{request_id}"]["GET"]
    for answered in (generated, native):
        recorded_error(server, answered)  # written
        detail = requests.get(f"{server.url}/analytics/requests/{answered.headers['X-Request-ID']}",
                              headers=ADMIN, timeout=30)
        assert detail.status_code == 200
        operation.validate_response(detail)  # raises on a schema violation
    assert detail.json()["exchange"]["path"].endswith(":generateContent")


@pytest.fixture
def faulty(tmp_path, emulator):
    process = start(tmp_path, emulator.url, app="tests.faulty_wsgi:create()")
    yield process
    process.stop()


def test_an_internal_error_is_reported_as_one_on_both_apis(faulty, emulator):
    compat = post(faulty, "/gemini-proxy", f'{{"prompt": "hi {DEFECT_MARKER}"}}', CLIENT)
    assert compat.status_code == 500
    assert compat.json()["result"] == "Failed"
    assert compat.json()["errors"][0]["code"] == "INTERNAL_ERROR"  # our bug, not Gemini's
    generate = post(faulty, "/gemini/generate", f'{{"prompt": {{"text": "hi {DEFECT_MARKER}"}}}}', CLIENT)
    assert generate.status_code == 500 and generate.json()["error"]["code"] == "INTERNAL_ERROR"
    assert "ZeroDivisionError" not in compat.text + generate.text  # logged, not told
    assert "ZeroDivisionError" in faulty.output()
    assert emulator.stats()["total"] == 0

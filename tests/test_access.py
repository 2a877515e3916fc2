"""Access control: client keys on every API, the admin key, limits, quotas, input limits, CORS."""
import time

import pytest
import requests

from proxy.access import clients
from tests import processes
from tests.conftest import ADMIN_KEY, KEYS, MODELS, rows, wait_recorded

GENERATE = {"prompt": {"text": "hello"}}
NATIVE_BODY = {"contents": [{"parts": [{"text": "hello"}]}]}
NATIVE_PATH = f"/v1beta/models/{MODELS[0]}:generateContent"


def issue(app, name="tester", **limits):
    with app.app_context():
        client, secret = clients.create(name, limits.get("rate_limit"), limits.get("daily_token_quota"))
        return client.id, secret


def call(client, api, key=None, how="x-api-key", body=None):
    """One request to `api` presenting `key` the way `how` says."""
    headers, query = {}, {}
    if key is not None:
        if how == "x-api-key":
            headers["X-API-KEY"] = key
        elif how == "bearer":
            headers["Authorization"] = f"Bearer {key}"
        elif how == "goog-header":
            headers["x-goog-api-key"] = key
        elif how == "query":
            query["key"] = key
    if api == "generate":
        return client.post("/gemini/generate", json=body or GENERATE, headers=headers, query_string=query)
    if api == "compat":
        return client.post("/gemini-proxy", json=body or {"prompt": "hello"}, headers=headers, query_string=query)
    if api == "native":
        return client.post(NATIVE_PATH, json=body or NATIVE_BODY, headers=headers, query_string=query)
    raise ValueError(api)


def error_code(response, api):
    body = response.json
    if api == "compat":
        return body["errors"][0]["code"]
    if api == "native":
        return body["error"]["status"]
    return body["error"]["code"]


APIS = ["generate", "compat", "native"]


@pytest.mark.parametrize("api", APIS)
def test_open_when_no_keys_exist(client, api):
    assert call(client, api).status_code == 200
    assert client.get("/health").json["auth"] == "open"


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("how", ["x-api-key", "bearer"])
def test_a_valid_key_is_accepted(app, client, api, how):
    _, secret = issue(app)
    assert call(client, api, secret, how).status_code == 200
    assert client.get("/health").json["auth"] == "keys"


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("key", [None, "gp_wrong-key-000000000000000000000"])
def test_missing_or_wrong_key_is_401_in_the_apis_shape(app, client, emulator, api, key):
    issue(app)
    response = call(client, api, key)
    assert response.status_code == 401
    assert error_code(response, api) == {"compat": "UNAUTHORIZED", "native": "UNAUTHENTICATED"}.get(api, "UNAUTHORIZED")
    assert emulator.stats()["total"] == 0


@pytest.mark.parametrize("api", APIS)
def test_revoked_and_rotated_keys_stop_at_once(app, client, runner, api):
    client_id, secret = issue(app)
    assert call(client, api, secret).status_code == 200
    result = runner.invoke(args=["keys", "rotate", str(client_id)])
    new_secret = result.output.strip().splitlines()[-1]
    assert call(client, api, secret).status_code == 401
    assert call(client, api, new_secret).status_code == 200
    runner.invoke(args=["keys", "revoke", str(client_id)])
    assert call(client, api, new_secret).status_code == 401


def test_require_api_key_closes_the_proxy_with_no_keys(make_app):
    client = make_app(REQUIRE_API_KEY=True).test_client()
    assert call(client, "generate").status_code == 401
    assert client.get("/health").status_code == 200 and client.get("/health").json["auth"] == "keys"


def test_keys_from_the_environment(make_app):
    app = make_app(API_KEYS=["env-key-one-1234567890", "env-key-two-1234567890"])
    client = app.test_client()
    assert call(client, "generate", "env-key-two-1234567890").status_code == 200
    assert call(client, "generate", "env-key-three-000000").status_code == 401
    names = rows(app.config["SQLALCHEMY_DATABASE_URI"], "SELECT source, revoked_at IS NULL FROM api_clients")
    assert names == [("env", 1), ("env", 1)]


@pytest.mark.parametrize("how", ["goog-header", "query", "bearer"])
def test_native_proxy_key_in_geminis_place_is_swapped_for_a_server_key(app, client, emulator, how):
    _, secret = issue(app)
    response = call(client, "native", secret, how)
    assert response.status_code == 200
    (seen,) = emulator.requests()
    assert seen["key"] == KEYS[0] and secret not in str(seen)


def test_native_with_proxy_key_and_own_gemini_key_forwards_the_own_key(app, client, emulator):
    _, secret = issue(app)
    response = client.post(NATIVE_PATH, json=NATIVE_BODY, headers={"X-API-KEY": secret, "x-goog-api-key": KEYS[2]})
    assert response.status_code == 200
    assert emulator.requests()[-1]["key"] == KEYS[2]


@pytest.mark.parametrize("api", APIS)
def test_every_logged_request_carries_its_client(app, client, api):
    client_id, secret = issue(app)
    call(client, api, secret).close()  # a native exchange is recorded when its response closes
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    deadline = time.monotonic() + 5
    while not rows(url, "SELECT client_id FROM request_log") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rows(url, "SELECT client_id FROM request_log") == [(client_id,)]


def test_admin_endpoints_need_the_admin_key(make_app):
    app = make_app(ADMIN_API_KEY=ADMIN_KEY)
    client = app.test_client()
    _, secret = issue(app)
    assert client.get("/admin/clients").status_code == 401
    assert client.get("/admin/clients", headers={"X-API-KEY": secret}).status_code == 401
    listed = client.get("/admin/clients", headers={"X-API-KEY": ADMIN_KEY})
    assert listed.status_code == 200 and [c["name"] for c in listed.json] == ["tester"]
    created = client.post("/admin/clients", json={"name": "ci", "rate_limit": "5/minute"},
                          headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert created.status_code == 201 and created.json["api_key"].startswith("gp_")
    assert call(client, "generate", created.json["api_key"]).status_code == 200
    rotated = client.post(f"/admin/clients/{created.json['id']}/rotate", headers={"X-API-KEY": ADMIN_KEY})
    assert call(client, "generate", created.json["api_key"]).status_code == 401
    assert call(client, "generate", rotated.json["api_key"]).status_code == 200
    revoked = client.post(f"/admin/clients/{created.json['id']}/revoke", headers={"X-API-KEY": ADMIN_KEY})
    assert revoked.json["active"] is False
    assert call(client, "generate", rotated.json["api_key"]).status_code == 401
    bad = client.post("/admin/clients", json={"name": "x", "rate_limit": "lots"}, headers={"X-API-KEY": ADMIN_KEY})
    assert bad.status_code == 400
    assert client.post("/admin/clients/999/revoke", headers={"X-API-KEY": ADMIN_KEY}).status_code == 404


def test_admin_endpoints_are_off_when_keys_are_on_without_an_admin_key(app, client):
    issue(app)
    response = client.get("/admin/clients")
    assert response.status_code == 403 and response.json["error"]["code"] == "ADMIN_DISABLED"


def test_cli_shows_the_secret_once_and_stores_only_its_hash(app, runner, tmp_path):
    created = runner.invoke(args=["keys", "create", "build-bot", "--rate-limit", "10/minute", "--token-quota", "500"])
    assert created.exit_code == 0
    secret = created.output.strip().splitlines()[-1]
    listed = runner.invoke(args=["keys", "list"]).output
    assert "build-bot" in listed and "limit=10/minute" in listed and "quota=500" in listed and secret not in listed
    data = (tmp_path / "proxy.db").read_bytes() + (tmp_path / "proxy.db-wal").read_bytes()
    assert secret.encode() not in data and clients.hash_key(secret).encode() in data
    assert runner.invoke(args=["keys", "create", "x", "--rate-limit", "often"]).exit_code != 0
    assert runner.invoke(args=["keys", "revoke", "nobody"]).exit_code != 0


# --- limits ---------------------------------------------------------------------------------

@pytest.mark.parametrize("api", APIS)
def test_rate_limit_trips_with_retry_after_and_headers(make_app, api):
    app = make_app(RATE_LIMIT="3/minute")
    client = app.test_client()
    _, secret = issue(app)
    answers = [call(client, api, secret) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    limited = answers[-1]
    assert error_code(limited, api) == {"compat": "QUOTA_ERROR", "native": "RESOURCE_EXHAUSTED"}.get(api, "RATE_LIMITED")
    assert int(limited.headers["Retry-After"]) > 0
    assert limited.headers["X-RateLimit-Limit"] == "3" and limited.headers["X-RateLimit-Remaining"] == "0"
    assert answers[0].headers["X-RateLimit-Remaining"] == "2"


def test_rate_limits_are_per_key_with_overrides(make_app):
    app = make_app(RATE_LIMIT="2/minute")
    client = app.test_client()
    _, default_key = issue(app, "default")
    _, tight_key = issue(app, "tight", rate_limit="1/minute")
    assert [call(client, "generate", tight_key).status_code for _ in range(2)] == [200, 429]
    assert [call(client, "generate", default_key).status_code for _ in range(3)] == [200, 200, 429]


def test_rate_limit_resets_after_its_window(make_app):
    app = make_app(RATE_LIMIT="2/second")
    client = app.test_client()
    _, secret = issue(app)
    assert [call(client, "generate", secret).status_code for _ in range(3)] == [200, 200, 429]
    time.sleep(1.1)
    assert call(client, "generate", secret).status_code == 200


@pytest.mark.e2e
def test_rate_limits_hold_across_instances_through_redis(tmp_path, emulator, redis_server):
    """Two Gunicorn instances (two workers each) share one Redis: the limit is global."""
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    settings = dict(GEMINI_API_KEY=KEYS[0], GEMINI_BASE_URL=emulator.url, GEMINI_MODELS=",".join(MODELS),
                    DATABASE_URL=database, RATE_LIMIT="5/minute", RATE_LIMIT_STORAGE_URL=redis_server.url,
                    API_KEYS="shared-client-key-123456")
    servers = [processes.start_gunicorn(str(tmp_path), **settings) for _ in range(2)]
    try:
        for server in servers:
            server.wait_ready(log_marker="Worker ready", count=server.workers)
        statuses = [requests.post(f"{servers[n % 2].url}/gemini/generate", json=GENERATE, timeout=30,
                                  headers={"X-API-KEY": "shared-client-key-123456"}).status_code for n in range(8)]
    finally:
        for server in servers:
            server.stop()
    assert statuses == [200] * 5 + [429] * 3


def test_daily_token_quota(make_app):
    app = make_app()
    client = app.test_client()
    _, secret = issue(app, daily_token_quota=40)
    statuses = [call(client, "generate", secret).status_code for _ in range(4)]
    assert statuses[:2] == [200, 200] and statuses[-1] == 429  # each answer is about 20 tokens
    last = call(client, "generate", secret)
    assert last.json["error"]["code"] == "TOKEN_QUOTA_EXCEEDED" and int(last.headers["Retry-After"]) > 0
    assert call(client, "native", secret).status_code == 429  # the quota spans every API


def test_default_daily_token_quota_applies_to_keys_without_their_own(make_app):
    app = make_app(DAILY_TOKEN_QUOTA=1)
    client = app.test_client()
    _, secret = issue(app)
    _, unlimited = issue(app, "unlimited", daily_token_quota=0)
    assert [call(client, "generate", secret).status_code for _ in range(2)] == [200, 429]
    assert [call(client, "generate", unlimited).status_code for _ in range(2)] == [200, 200]


# --- /gemini-proxy --------------------------------------------------------------------------

def test_compat_success_shape_with_server_defaults(app, client, emulator):
    response = client.post("/gemini-proxy", json={"prompt": "Hi there"})
    assert response.status_code == 200
    body = response.json
    assert body["result"] == "OK" and set(body["data"]) == {"response", "model", "time"}
    assert body["data"]["model"] == MODELS[0] and isinstance(body["data"]["time"], int)
    assert emulator.requests()[-1]["key"] == KEYS[0]
    assert rows(app.config["SQLALCHEMY_DATABASE_URI"], "SELECT count(*) FROM metrics") == [(1,)]


def test_compat_with_the_clients_own_key_and_model(app, client, emulator, tmp_path):
    response = client.post("/gemini-proxy", json={"prompt": "Hi", "model": MODELS[1], "api_key": KEYS[2]})
    assert response.status_code == 200 and response.json["data"]["model"] == MODELS[1]
    seen = emulator.requests()[-1]
    assert seen["key"] == KEYS[2] and seen["model"] == MODELS[1]
    assert rows(app.config["SQLALCHEMY_DATABASE_URI"], "SELECT model_requested, model_used FROM request_log") == [
        (MODELS[1], MODELS[1])]
    data = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert KEYS[2].encode() not in data


@pytest.mark.parametrize("body,status,code", [
    ({"prompt": "Hi", "model": MODELS[0]}, 400, "INVALID_REQUEST"),
    ({"prompt": "Hi", "api_key": KEYS[2]}, 400, "INVALID_REQUEST"),
    ({"prompt": ""}, 400, "INVALID_REQUEST"),
    ({}, 400, "INVALID_REQUEST"),
    ({"prompt": 5}, 400, "INVALID_REQUEST"),
    ({"prompt": "x" * 10_001}, 400, "PROMPT_TOO_LONG"),
    ({"prompt": "Hi", "model": "gemini-ultra-9", "api_key": KEYS[2]}, 400, "MODEL_NOT_FOUND"),
    ({"prompt": "Hi", "model": MODELS[0], "api_key": "key with\nnewline"}, 400, "INVALID_REQUEST"),
])
def test_compat_rules(client, emulator, body, status, code):
    response = client.post("/gemini-proxy", json=body)
    assert response.status_code == status
    assert response.json == {"result": "Failed", "errors": [{"code": code, "message": response.json["errors"][0]["message"]}]}
    assert emulator.stats()["total"] == 0


@pytest.mark.parametrize("fault,status,code", [
    ({"status": 429, "times": None}, 429, "QUOTA_ERROR"),
    ({"status": 503, "times": None}, 502, "UPSTREAM_ERROR"),
    ({"status": 404, "times": None}, 404, "MODEL_NOT_FOUND"),
])
def test_compat_upstream_failures(client, emulator, fault, status, code):
    emulator.fault(**fault)
    response = client.post("/gemini-proxy", json={"prompt": "Hi", "model": MODELS[0], "api_key": KEYS[2]})
    assert response.status_code == status and response.json["errors"][0]["code"] == code


def test_compat_rejected_client_key(client, emulator):
    response = client.post("/gemini-proxy", json={"prompt": "Hi", "model": MODELS[0], "api_key": "not-a-key-0000"})
    assert response.status_code == 400 and response.json["errors"][0]["code"] == "INVALID_REQUEST"


def test_compat_prompt_limit_is_configurable(make_app):
    client = make_app(PROXY_MAX_PROMPT_CHARS=5).test_client()
    assert client.post("/gemini-proxy", json={"prompt": "123456"}).json["errors"][0]["code"] == "PROMPT_TOO_LONG"


# --- input limits, CORS, headers --------------------------------------------------------------

def test_native_allowed_models_are_enforced_before_upstream(make_app, emulator):
    client = make_app(ALLOWED_MODELS=[MODELS[1]]).test_client()
    response = client.post(NATIVE_PATH, json=NATIVE_BODY)
    assert response.status_code == 400 and response.json["error"]["status"] == "INVALID_ARGUMENT"
    assert emulator.stats()["total"] == 0
    assert client.post(NATIVE_PATH.replace(MODELS[0], MODELS[1]), json=NATIVE_BODY).status_code == 200
    assert call(client, "generate").json["model"] == MODELS[1]  # the chain narrowed to what is allowed


def test_native_prompt_limit_and_body_size(make_app, emulator):
    client = make_app(NATIVE_MAX_PROMPT_CHARS=10, MAX_CONTENT_LENGTH=4096).test_client()
    long_prompt = {"contents": [{"parts": [{"text": "x" * 11}]}]}
    assert client.post(NATIVE_PATH, json=long_prompt).status_code == 400
    huge = {"contents": [{"parts": [{"text": "x" * 9000}]}]}
    response = client.post(NATIVE_PATH, json=huge)
    assert response.status_code == 413 and response.json["error"]["code"] == 413
    assert emulator.stats()["total"] == 0


def test_cors_for_configured_origins_only(make_app):
    client = make_app(CORS_ORIGINS=["https://app.example.com"]).test_client()
    preflight = client.options("/gemini/generate", headers={
        "Origin": "https://app.example.com", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Content-Type, X-API-KEY"})
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "x-api-key" in preflight.headers["Access-Control-Allow-Headers"].lower()
    other = client.post("/gemini/generate", json=GENERATE, headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_security_headers(client):
    response = call(client, "generate")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_bad_access_settings_stop_start_up():
    from config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="RATE_LIMIT"):
        load_settings({"RATE_LIMIT": "sixty a minute"})
    with pytest.raises(ConfigError, match="ADMIN_API_KEY"):
        load_settings({"ADMIN_API_KEY": "short"})


def test_no_client_or_admin_secret_in_logs_or_database(make_app, tmp_path, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    app = make_app(ADMIN_API_KEY=ADMIN_KEY, API_KEYS=["env-secret-key-9876543210"])
    client = app.test_client()
    _, secret = issue(app)
    sent = [call(client, "generate", secret), call(client, "native", secret, "query"),
            call(client, "generate", "env-secret-key-9876543210"),
            client.post("/gemini-proxy", json={"prompt": "Hi", "model": MODELS[0], "api_key": KEYS[2]},
                        headers={"X-API-KEY": secret})]
    for response in sent:
        response.close()  # a native exchange is recorded when its response closes
    client.get("/admin/clients", headers={"X-API-KEY": ADMIN_KEY})
    wait_recorded(app.config["SQLALCHEMY_DATABASE_URI"], sent)  # then the records are there to search
    data = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    logs = caplog.text
    for value in (secret, ADMIN_KEY, "env-secret-key-9876543210", KEYS[2]):
        assert value.encode() not in data and value not in logs


def test_a_key_revoked_by_another_worker_on_the_host_stops_at_once(make_app):
    app, other = make_app(), make_app()  # two workers (or a worker and the CLI) on one database
    client_id, secret = issue(app)
    client = app.test_client()
    assert call(client, "native", secret, how="goog-header").status_code == 200  # now in app's key cache
    with other.app_context():
        clients.revoke(client_id)
    assert call(client, "native", secret, how="goog-header").status_code == 401


def test_a_worker_on_another_host_learns_of_a_revoked_key_within_client_cache_seconds(make_app, tmp_path):
    app, other = make_app(CLIENT_CACHE_SECONDS=10), make_app()
    other.extensions["key_cache"].marker = str(tmp_path / "another-host-marker")  # a marker app cannot see
    now = [time.monotonic()]
    app.extensions["key_cache"].clock = lambda: now[0]
    client_id, secret = issue(app)
    client = app.test_client()
    assert call(client, "generate", secret).status_code == 200
    with other.app_context():
        clients.revoke(client_id)
    now[0] += 9
    assert call(client, "generate", secret).status_code == 200  # still trusted: the cache's documented lag
    now[0] += 1
    assert call(client, "generate", secret).status_code == 401

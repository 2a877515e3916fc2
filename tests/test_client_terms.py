"""A key's terms (budget, period, model allowlist, expiry) through the admin API and the CLI: checked hard
(400 naming the field, never a 500), and enforced on every API: 403 for another model, 401 once expired."""
import json
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from proxy.access import clients, terms
from tests.conftest import KEYS, MODELS
from tests.test_access import ADMIN_KEY, call, error_code

ADMIN = {"X-API-KEY": ADMIN_KEY}


def code_of(response, api):
    if api == "native":
        return response.json["error"]["details"][0]["reason"]
    return error_code(response, api)


def test_admin_creates_and_patches_a_keys_terms(make_app):
    app = make_app(ADMIN_API_KEY=ADMIN_KEY)
    client = app.test_client()
    created = client.post("/admin/clients", headers=ADMIN, json={
        "name": "team-a", "budget_usd": 25, "models": [MODELS[1], f"models/{MODELS[1]}"],
        "expires_at": "2030-01-31T12:00:00+01:00"})
    assert created.status_code == 201, created.json
    body = created.json
    assert body["budget_usd"] == 25 and body["budget_period"] == "month" and body["spent_usd"] == 0
    assert body["models"] == [MODELS[1]] and body["expires_at"] == "2030-01-31T11:00:00+00:00"
    assert body["budget_resets_at"].endswith("-01T00:00:00+00:00")
    patched = client.patch(f"/admin/clients/{body['id']}", headers=ADMIN,
                           json={"budget_usd": 5.5, "budget_period": "day", "models": None})
    assert patched.status_code == 200, patched.json
    assert (patched.json["budget_usd"], patched.json["budget_period"], patched.json["models"]) == (5.5, "day", None)
    assert patched.json["expires_at"] == "2030-01-31T11:00:00+00:00"  # untouched
    cleared = client.patch(f"/admin/clients/{body['id']}", headers=ADMIN, json={"budget_usd": None})
    assert cleared.json["budget_usd"] is None and cleared.json["budget_period"] is None
    (listed,) = [c for c in client.get("/admin/clients", headers=ADMIN).json if c["id"] == body["id"]]
    assert listed["budget_usd"] is None and listed["spent_usd"] is None


def test_patch_refuses_an_unknown_client_and_non_objects(make_app):
    client = make_app(ADMIN_API_KEY=ADMIN_KEY).test_client()
    assert client.patch("/admin/clients/999", headers=ADMIN, json={"budget_usd": 1}).status_code == 404
    created = client.post("/admin/clients", headers=ADMIN, json={"name": "x"}).json
    for body in ([1], "text", 3):
        response = client.patch(f"/admin/clients/{created['id']}", headers=ADMIN, json=body)
        assert response.status_code == 400 and response.json["error"]["code"] == "INVALID_REQUEST"


BAD = [
    {"budget_usd": -1}, {"budget_usd": 1e12}, {"budget_usd": "25"}, {"budget_usd": True},
    {"budget_usd": 5, "budget_period": "week"}, {"budget_period": "DAY"},
    {"models": []}, {"models": ["../../etc"]}, {"models": "gemini-2.5-flash"}, {"models": [1]},
    {"models": [f"m{i}" for i in range(51)]},
    {"expires_at": "tomorrow"}, {"expires_at": "2026-13-01"}, {"expires_at": "0001-01-01"},
    {"expires_at": 1767225600}, {"owner": "me"},
]


@pytest.mark.parametrize("method", ["post", "patch"])
@pytest.mark.parametrize("terms_given", BAD, ids=[json.dumps(b)[:40] for b in BAD])
def test_bad_terms_are_a_400_naming_the_field(make_app, method, terms_given):
    client = make_app(ADMIN_API_KEY=ADMIN_KEY).test_client()
    if method == "post":
        response = client.post("/admin/clients", headers=ADMIN, json={"name": "x", **terms_given})
    else:
        created = client.post("/admin/clients", headers=ADMIN, json={"name": "x"}).json
        response = client.patch(f"/admin/clients/{created['id']}", headers=ADMIN, json=terms_given)
    assert response.status_code == 400, response.json
    assert response.json["error"]["code"] == "INVALID_REQUEST"
    details = response.json["error"]["details"]
    named = {field.split(".")[0] for field in details} | {word for text in details.values() for word in
                                                          str(text).replace("'", " ").split()}
    assert named & set(terms_given), details


def test_nan_and_infinite_budgets_are_malformed_json(make_app):
    client = make_app(ADMIN_API_KEY=ADMIN_KEY).test_client()
    for raw in (b'{"name": "x", "budget_usd": NaN}', b'{"name": "x", "budget_usd": 1e400}'):
        response = client.post("/admin/clients", headers=ADMIN, data=raw, content_type="application/json")
        assert response.status_code == 400 and response.json["error"]["code"] == "MALFORMED_JSON"


junk = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(terms.PARSERS) + ["other"]), junk, max_size=4))
def test_parsing_any_terms_returns_checked_values_or_bad_term(given_terms):
    try:
        parsed = terms.parse(given_terms)
    except terms.BadTerm as exc:
        assert exc.field in given_terms
        return
    if parsed.get("budget_usd") is not None:
        assert 0 <= parsed["budget_usd"] <= 1e9 and parsed["budget_period"] in ("day", "month")
    if parsed.get("models") is not None:
        assert parsed["models"] and all(isinstance(m, str) for m in parsed["models"])
    if parsed.get("expires_at") is not None:
        assert parsed["expires_at"].tzinfo is None


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.dictionaries(st.sampled_from(["budget_usd", "budget_period", "models", "expires_at"]), junk,
                            min_size=1, max_size=3))
def test_any_admin_body_is_answered_without_a_500(make_app, body):
    app = getattr(test_any_admin_body_is_answered_without_a_500, "app", None)
    if app is None:
        app = test_any_admin_body_is_answered_without_a_500.app = make_app(ADMIN_API_KEY=ADMIN_KEY)
    client = app.test_client()
    created = client.post("/admin/clients", headers=ADMIN, json={"name": "fuzz", **body})
    assert created.status_code in (201, 400), created.json
    first = client.post("/admin/clients", headers=ADMIN, json={"name": "fuzz"}).json
    patched = client.patch(f"/admin/clients/{first['id']}", headers=ADMIN, json=body)
    assert patched.status_code in (200, 400), patched.json


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=30))
def test_any_cli_text_for_a_term_parses_or_is_a_bad_term(text):
    from proxy.access.cli import _from_text

    for name in ("budget_usd", "budget_period", "models", "expires_at", "daily_token_quota", "rate_limit"):
        try:
            value = _from_text(name, text)
            terms.parse({name: value})
        except terms.BadTerm as exc:
            assert exc.field == name


def test_cli_creates_updates_and_refuses(make_app):
    app = make_app()
    runner = app.test_cli_runner()
    created = runner.invoke(args=["keys", "create", "bot", "--budget-usd", "25", "--budget-period", "day",
                                  "--models", f"{MODELS[0]},{MODELS[1]}", "--expires-at", "2031-05-01"])
    assert created.exit_code == 0, created.output
    with app.app_context():
        client = clients.resolve("bot")
        assert (client.budget_usd, client.budget_period, client.models) == (25.0, "day", MODELS)
        assert client.expires_at == datetime(2031, 5, 1)
    updated = runner.invoke(args=["keys", "update", "bot", "--budget-usd", "none", "--models", MODELS[0]])
    assert updated.exit_code == 0, updated.output
    with app.app_context():
        client = clients.resolve("bot")
        assert (client.budget_usd, client.budget_period, client.models) == (None, None, [MODELS[0]])
    listed = runner.invoke(args=["keys", "list"]).output
    assert f"models={MODELS[0]}" in listed and "expires=2031-05-01T00:00Z" in listed
    for args in (["--budget-usd", "nan"], ["--budget-usd", "-3"], ["--budget-period", "week"],
                 ["--expires-at", "soon"], ["--models", "a/../b"]):
        refused = runner.invoke(args=["keys", "create", "bad", *args])
        assert refused.exit_code == 2 and "Invalid value" in refused.output, refused.output
    assert runner.invoke(args=["keys", "update", "nobody", "--budget-usd", "1"]).exit_code == 1


@pytest.mark.parametrize("api", ["generate", "compat", "native", "openai"])
def test_a_model_outside_the_keys_allowlist_is_a_403(make_app, api):
    app = make_app()
    with app.app_context():
        _, secret = clients.create("narrow", models=[MODELS[1]])
    client = app.test_client()
    if api == "openai":
        response = client.post("/v1beta/openai/chat/completions", headers={"Authorization": f"Bearer {secret}"},
                               json={"model": MODELS[0], "messages": [{"role": "user", "content": "hi"}]})
        assert response.status_code == 403, response.get_data(as_text=True)
        allowed = client.post("/v1beta/openai/chat/completions", headers={"Authorization": f"Bearer {secret}"},
                              json={"model": MODELS[1], "messages": [{"role": "user", "content": "hi"}]})
        assert allowed.status_code == 200
        return
    body = {"generate": {"prompt": {"text": "hi"}, "model": MODELS[0]},
            "compat": {"prompt": "hi", "model": MODELS[0], "api_key": KEYS[0]}, "native": None}[api]
    response = call(client, api, secret, body=body)
    if api == "compat":  # a model is named only with the caller's own Gemini key; the legacy codes
        assert response.status_code == 403 and error_code(response, api) == "MODEL_NOT_FOUND"
        served = call(client, api, secret)  # the server's keys: the chain, within the allowlist
        assert served.status_code == 200 and served.json["data"]["model"] == MODELS[1]
        return
    assert response.status_code == 403 and code_of(response, api) == "MODEL_NOT_ALLOWED_FOR_KEY"
    other = {"generate": {"prompt": {"text": "hi"}, "model": MODELS[1]}}.get(api)
    if api == "native":
        allowed = client.post(f"/v1beta/models/{MODELS[1]}:generateContent", headers={"X-API-KEY": secret},
                              json={"contents": [{"parts": [{"text": "hi"}]}]})
    else:
        allowed = call(client, api, secret, body=other)
    assert allowed.status_code == 200, allowed.get_data(as_text=True)


def test_a_key_with_no_model_named_is_served_by_its_allowed_model(make_app):
    app = make_app()
    with app.app_context():
        _, secret = clients.create("narrow", models=[MODELS[1]])
    response = call(app.test_client(), "generate", secret)
    assert response.status_code == 200 and response.json["model"] == MODELS[1]


def test_fallback_never_leaves_the_keys_allowlist(make_app, emulator):
    app = make_app()
    with app.app_context():
        _, narrow = clients.create("narrow", models=[MODELS[0]])
        _, wide = clients.create("wide")
    emulator.fault(status=503, model=MODELS[0], times=None)
    client = app.test_client()
    refused = call(client, "generate", narrow)
    assert refused.status_code == 502  # MODELS[1] would have answered, but this key may not use it
    assert {seen["model"] for seen in emulator.requests()} == {MODELS[0]}
    fell_back = call(client, "generate", wide)
    assert fell_back.status_code == 200 and fell_back.json["model"] == MODELS[1]


@pytest.mark.parametrize("api", ["generate", "compat", "native"])
def test_an_expired_key_is_a_401_with_its_own_code(make_app, api):
    app = make_app()
    with app.app_context():
        _, expired = clients.create("old", expires_at=datetime.utcnow() - timedelta(seconds=1))
        _, fresh = clients.create("new", expires_at=datetime.utcnow() + timedelta(days=1))
    client = app.test_client()
    response = call(client, api, expired)
    assert response.status_code == 401
    if api == "compat":
        assert error_code(response, api) == "UNAUTHORIZED"
    else:
        assert code_of(response, api) == "KEY_EXPIRED"
    assert call(client, api, fresh).status_code == 200

"""A hostile operator's and client's attacks on a key's terms (budget, period, allowlist, expiry) through
the admin API: every bad body is a 400 naming the field, never a 500, and no edit leaves a budget unenforced."""
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from proxy.access import terms
from tests.conftest import ADMIN_KEY, MODELS
from tests.test_access import call

ADMIN = {"X-API-KEY": ADMIN_KEY}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10)


def create(client, **body):
    response = client.post("/admin/clients", json={"name": "hostile", **body}, headers=ADMIN)
    assert response.status_code == 201, response.json
    return response.json


def patch(client, client_id, data):
    return client.patch(f"/admin/clients/{client_id}", data=data, headers={**ADMIN, "Content-Type": "application/json"})


@settings(max_examples=300, deadline=None)
@given(given_terms=st.dictionaries(st.sampled_from(sorted(terms.PARSERS)) | st.text(max_size=20), json_values,
                                   max_size=4),
       current=st.sampled_from([None, "day", "month"]))
def test_any_terms_parse_or_name_the_bad_field(given_terms, current):
    try:
        parsed = terms.parse(given_terms, current)
    except terms.BadTerm as exc:
        assert exc.field in given_terms
        return
    budget = parsed.get("budget_usd")
    assert budget is None or (math.isfinite(budget) and budget >= 0 and math.copysign(1, budget) == 1)
    if budget is not None:  # a budget given always has a period it is counted in
        assert parsed.get("budget_period") or (current and "budget_period" not in given_terms)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.dictionaries(st.sampled_from(sorted(terms.PARSERS)), json_values, min_size=1, max_size=3))
def test_any_patch_body_is_applied_or_a_400_never_a_500(admin_app, body):
    client = admin_app.test_client()
    client_id = create(client)["id"]
    response = patch(client, client_id, json.dumps(body))
    assert response.status_code in (200, 400), response.json
    if response.status_code == 400:
        assert response.json["error"]["code"] == "INVALID_REQUEST"


@pytest.mark.parametrize("data, reason", [
    ('{"budget_usd": NaN}', "NaN"), ('{"budget_usd": Infinity}', "Infinity"), ('{"budget_usd": 1e400}', "1e400"),
    ('{"budget_usd": 5, "budget_usd": 6}', "repeats"), ('{"budget_usd": ', "not valid JSON"),
])
def test_a_malformed_patch_body_says_why_as_a_post_does(admin_app, data, reason):
    client = admin_app.test_client()
    client_id = create(client)["id"]
    response = patch(client, client_id, data)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "MALFORMED_JSON" and reason in response.json["error"]["message"]


def test_minus_zero_is_a_budget_of_zero(admin_app):
    client = admin_app.test_client()
    made = client.post("/admin/clients", data='{"name": "z", "budget_usd": -0.0}',
                       headers={**ADMIN, "Content-Type": "application/json"}).json
    assert math.copysign(1, made["budget_usd"]) == 1
    changed = patch(client, made["id"], '{"budget_usd": -0.0}').json
    assert changed["budget_usd"] == 0 and math.copysign(1, changed["budget_usd"]) == 1


def test_clearing_the_period_alone_cannot_switch_a_budget_off(admin_app):
    """A $0 budget stops a key; a careless `budget_period: null` must not turn it into no budget at all."""
    client = admin_app.test_client()
    made = create(client, budget_usd=0.0, budget_period="day")
    response = patch(client, made["id"], '{"budget_period": null}')
    assert response.status_code == 400 and "budget_period" in response.json["error"]["details"]
    assert call(client, "generate", made["api_key"]).status_code == 429  # still held to its budget
    cleared = patch(client, made["id"], '{"budget_usd": null, "budget_period": null}')
    assert cleared.status_code == 200 and cleared.json["budget_usd"] is None


def test_a_client_cannot_change_its_own_terms(admin_app):
    client = admin_app.test_client()
    made = create(client, budget_usd=1.0)
    for headers in ({"X-API-KEY": made["api_key"]}, {"Authorization": f"Bearer {made['api_key']}"},
                    {"x-goog-api-key": made["api_key"]}):
        response = client.patch(f"/admin/clients/{made['id']}", json={"budget_usd": 1e6}, headers=headers)
        assert response.status_code in (401, 403)
    assert client.get("/admin/clients", headers=ADMIN).json[0]["budget_usd"] == 1.0


def test_patch_on_an_unknown_client_is_a_404_and_on_a_revoked_one_keeps_it_revoked(admin_app):
    client = admin_app.test_client()
    assert patch(client, 987654, '{"budget_usd": 1}').status_code == 404
    assert patch(client, 10 ** 30, '{"budget_usd": 1}').status_code == 404
    made = create(client)
    client.post(f"/admin/clients/{made['id']}/revoke", headers=ADMIN)
    changed = patch(client, made["id"], '{"budget_usd": 3}')
    assert changed.status_code == 200 and changed.json["state"] == "revoked"
    assert call(client, "generate", made["api_key"]).status_code == 401


@pytest.mark.parametrize("models", [["a\x00b"], ["x" * 5000], ["models/../gemini-2.5-pro"], ["gemini 2.5"],
                                    ["gemini-2.5-flash\n"], ["%2e%2e"], [""]])
def test_hostile_model_names_are_refused_in_an_allowlist(admin_app, models):
    client = admin_app.test_client()
    made = create(client)
    response = patch(client, made["id"], json.dumps({"models": models}))
    assert response.status_code == 400 and "models" in json.dumps(response.json["error"])
    assert len(response.data) < 2000  # the echo of a huge name is cut short


def test_versioned_prefixed_and_cased_names_are_one_allowlist_entry(admin_app):
    client = admin_app.test_client()
    made = create(client, models=[f"models/{MODELS[0]}", MODELS[0]])
    assert made["models"] == [MODELS[0]]


@pytest.mark.parametrize("name", ["a\x00b", "line\nbreak", "\x1b[31mred", "tab\there"])
def test_a_name_with_control_characters_is_refused(admin_app, name):
    """PostgreSQL refuses a NUL in text (a 500 there), and a newline forges log and CLI lines."""
    response = admin_app.test_client().post("/admin/clients", json={"name": name}, headers=ADMIN)
    assert response.status_code == 400 and "name" in response.json["error"]["details"]


def test_the_cli_refuses_a_name_with_control_characters(admin_app):
    result = admin_app.test_cli_runner().invoke(args=["keys", "create", "a\nb"])
    assert result.exit_code != 0 and "NAME" in result.output and "control characters" in result.output


def test_minus_zero_parses_as_zero():
    assert math.copysign(1, terms.parse({"budget_usd": -0.0})["budget_usd"]) == 1

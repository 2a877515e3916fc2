"""Budgets in USD: held before forwarding and settled at the real cost on every API, refused with
BUDGET_EXCEEDED and Retry-After at the period's end; the operator's budget; cache hits spend nothing."""
from datetime import datetime

import pytest

from proxy.access import budgets, clients
from tests.conftest import MODELS
from tests.test_access import call, error_code


def code_of(response, api):
    """The proxy's stable code on any API (the pass-through's is its ErrorInfo reason, as Google's are)."""
    if api == "native":
        return response.json["error"]["details"][0]["reason"]
    return error_code(response, api)

# A dollar a token in and out: a request's cost is its token count, in USD.
PRICES = {MODELS[0]: (1_000_000.0, 1_000_000.0), MODELS[1]: (1_000_000.0, 1_000_000.0)}
SMALL = {"prompt": {"text": "hello"}, "generation_config": {"max_output_tokens": 20}}


def issue(app, **terms):
    with app.app_context():
        client, secret = clients.create("budgeted", **terms)
        return client.id, secret


def spent(app, client_id, period="month"):
    return app.extensions["budgets"].spent(client_id, period, budgets.utcnow()) / budgets.MICRO


@pytest.mark.parametrize("api", ["generate", "compat", "native"])
def test_each_api_settles_its_hold_at_the_real_cost(make_app, api):
    app = make_app(MODEL_PRICES=PRICES)
    client_id, secret = issue(app, budget_usd=100_000.0, budget_period="day")
    assert call(app.test_client(), api, secret).status_code == 200
    used = spent(app, client_id, "day")
    assert 0 < used < 200  # a few dozen tokens at a dollar each; nothing left held


@pytest.mark.parametrize("api", ["generate", "compat", "native"])
def test_a_spent_budget_is_refused_until_the_period_ends(make_app, api):
    app = make_app(MODEL_PRICES=PRICES)
    client_id, secret = issue(app, budget_usd=1.0, budget_period="month")
    client = app.test_client()
    assert call(client, api, secret).status_code == 200  # admitted with a dollar left; overruns it once
    refused = call(client, api, secret)
    assert refused.status_code == 429 and code_of(refused, api) in ("BUDGET_EXCEEDED", "QUOTA_ERROR")
    now = budgets.utcnow()
    expected = (budgets.period_end("month", now) - now).total_seconds()
    assert abs(int(refused.headers["Retry-After"]) - expected) <= 2


def test_the_retry_after_of_a_daily_budget_is_utc_midnight(make_app):
    app = make_app(MODEL_PRICES=PRICES)
    _, secret = issue(app, budget_usd=0.0, budget_period="day")
    refused = call(app.test_client(), "generate", secret)
    assert refused.status_code == 429 and refused.json["error"]["code"] == "BUDGET_EXCEEDED"
    now = budgets.utcnow()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0) + (budgets.period_end("day", now) - budgets.period_start("day", now))
    assert abs(int(refused.headers["Retry-After"]) - (midnight - now).total_seconds()) <= 2


def test_period_ends():
    assert budgets.period_end("day", datetime(2026, 12, 31, 23, 59)) == datetime(2027, 1, 1)
    assert budgets.period_end("month", datetime(2026, 12, 31, 23, 59)) == datetime(2027, 1, 1)
    assert budgets.period_end("month", datetime(2026, 2, 1)) == datetime(2026, 3, 1)
    assert budgets.period_key("month", datetime(2026, 2, 17, 5)) == "2026-02-01"


def test_a_hold_is_the_estimate_at_the_models_prices(make_app):
    app = make_app(MODEL_PRICES={MODELS[0]: (2.0, 10.0)})
    _, secret = issue(app, budget_usd=1000.0, budget_period="month")
    ledgers = app.extensions["budgets"]
    with app.test_request_context("/gemini/generate", method="POST", headers={"X-API-KEY": secret}, json=SMALL):
        app.preprocess_request()
        (entry,) = next(iter(ledgers.holds["month"]._pending.values()))
    body_tokens = len(b'{"prompt": {"text": "hello"}, "generation_config": {"max_output_tokens": 20}}') // 4 + 1
    assert entry[4] == pytest.approx(body_tokens * 2 + 20 * 10, abs=2)  # micro-dollars


def test_the_operators_budget_refuses_every_client(make_app):
    app = make_app(MODEL_PRICES=PRICES, OPERATOR_BUDGET_USD=1.0)
    _, first = issue(app)
    _, second = issue(app)
    client = app.test_client()
    assert call(client, "generate", first).status_code == 200
    refused = call(client, "generate", second)
    assert refused.status_code == 429 and refused.json["error"]["code"] == "BUDGET_EXCEEDED"
    assert "operator" in refused.json["error"]["message"]
    assert spent(app, budgets.OPERATOR) > 1


def test_an_operator_refusal_gives_back_the_clients_hold(make_app):
    app = make_app(MODEL_PRICES=PRICES, OPERATOR_BUDGET_USD=1.0)
    client_id, secret = issue(app, budget_usd=10_000.0, budget_period="day")
    client = app.test_client()
    assert call(client, "generate", secret).status_code == 200
    before = spent(app, client_id, "day")
    assert call(client, "generate", secret).status_code == 429
    assert spent(app, client_id, "day") == before


def test_cache_hits_spend_nothing(make_app):
    app = make_app(MODEL_PRICES=PRICES, CACHE_ENABLED=True)
    client_id, secret = issue(app, budget_usd=100_000.0, budget_period="month")
    client = app.test_client()
    body = {"prompt": {"text": "cache me"}, "generation_config": {"temperature": 0, "max_output_tokens": 20}}
    assert call(client, "generate", secret, body=body).status_code == 200
    after_first = spent(app, client_id)
    hit = call(client, "generate", secret, body=body)
    assert hit.status_code == 200
    assert spent(app, client_id) == after_first


def test_a_key_without_a_budget_holds_nothing(make_app):
    app = make_app(MODEL_PRICES=PRICES)
    client_id, secret = issue(app)
    assert call(app.test_client(), "generate", secret).status_code == 200
    assert spent(app, client_id) == 0


def test_a_client_reads_its_own_usage(make_app):
    app = make_app(MODEL_PRICES=PRICES, DAILY_TOKEN_QUOTA=100_000)
    client_id, secret = issue(app, budget_usd=100_000.0, budget_period="day")
    client = app.test_client()
    assert call(client, "generate", secret).status_code == 200
    usage = client.get("/gemini/usage", headers={"X-API-KEY": secret})
    assert usage.status_code == 200, usage.json
    body = usage.json
    assert body["client_id"] == client_id and body["today"]["requests"] >= 1 and body["today"]["tokens"] > 0
    assert body["period"]["period"] == "day" and body["period"]["cost_usd"] == body["today"]["cost_usd"] > 0
    assert body["budget"]["usd"] == 100_000.0 and 0 < body["budget"]["spent_usd"] < 200
    assert body["budget"]["remaining_usd"] == pytest.approx(100_000.0 - body["budget"]["spent_usd"])
    assert body["budget"]["resets_at"].endswith("T00:00:00+00:00")
    assert body["quota"]["daily_tokens"] == 100_000 and body["quota"]["remaining"] < 100_000


def test_usage_is_read_even_when_the_budget_is_spent(make_app):
    app = make_app(MODEL_PRICES=PRICES)
    _, secret = issue(app, budget_usd=0.0, budget_period="month")
    client = app.test_client()
    assert call(client, "generate", secret).status_code == 429
    usage = client.get("/gemini/usage", headers={"X-API-KEY": secret})
    assert usage.status_code == 200 and usage.json["budget"]["remaining_usd"] == 0


def test_usage_needs_a_key(make_app):
    app = make_app()
    assert app.test_client().get("/gemini/usage").json["error"]["code"] == "UNAUTHORIZED"


def test_usage_is_documented(make_app):
    spec = make_app().test_client().get("/swagger.json").json
    operation = spec["paths"]["/gemini/usage"]["get"]
    assert {"200", "401", "429"} <= set(operation["responses"])
    assert "Usage" in spec["definitions"] and "UsageBudget" in spec["definitions"]


def test_ledgers_hold_what_is_left_and_settle_repeated_request_ids_one_by_one(make_app):
    app = make_app()
    ledgers, now = app.extensions["budgets"], budgets.utcnow()
    applied = [(7, "day", 100)]
    assert ledgers.reserve("same-id", applied, 60, now) is None
    assert ledgers.reserve("same-id", applied, 60, now) is None  # holds the 40 left, not 60
    refused = ledgers.reserve("other", applied, 10, now)
    assert refused is not None and refused[3].held == 100  # nothing left while both are in flight
    assert ledgers.settle("same-id", 30) == applied
    assert ledgers.settle("same-id", 30) == applied
    assert ledgers.settle("same-id", 30) == []  # nothing more held under that id
    assert ledgers.spent(7, "day", now) == 60


@pytest.mark.parametrize("settings", [
    {"OPERATOR_BUDGET_USD": "nan"}, {"OPERATOR_BUDGET_USD": "-1"}, {"OPERATOR_BUDGET_USD": "1e12"},
    {"OPERATOR_BUDGET_USD": "lots"}, {"BUDGET_ALERT_THRESHOLDS": "0.8,x"}, {"BUDGET_ALERT_THRESHOLDS": "0,1"},
    {"BUDGET_ALERT_THRESHOLDS": "inf"}, {"ALERT_WEBHOOK_URL": "ftp://example.com/hook"},
    {"ALERT_WEBHOOK_TIMEOUT_SECONDS": "0"},
])
def test_bad_budget_settings_stop_the_start_naming_the_setting(settings):
    from config import ConfigError, load_settings

    with pytest.raises(ConfigError, match=next(iter(settings))):
        load_settings(settings)


def test_budget_settings_defaults_and_values():
    from config import load_settings

    defaults = load_settings({})
    assert defaults["OPERATOR_BUDGET_USD"] == 0 and defaults["BUDGET_ALERT_THRESHOLDS"] == [0.8, 1.0]
    assert defaults["ALERT_WEBHOOK_URL"] == ""
    given = load_settings({"OPERATOR_BUDGET_USD": "250", "BUDGET_ALERT_THRESHOLDS": "1.0, 0.5,0.9",
                           "ALERT_WEBHOOK_URL": "https://hooks.example.com/budget"})
    assert given["OPERATOR_BUDGET_USD"] == 250.0 and given["BUDGET_ALERT_THRESHOLDS"] == [0.5, 0.9, 1.0]

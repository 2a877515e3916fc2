"""Every billed token costed: thoughts at the output price on every path, each kind at its price, long
prompts, batches and service tiers; MODEL_PRICES over the built-in table; costs stored once per record, so a
price change leaves history alone, and rolled-up hours report what their rows do."""
import json
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings, strategies as st

from config import ConfigError, load_settings
from models import RequestLog, db
from proxy.analytics import rollups
from proxy.analytics.pricing import LONG_PROMPT_TOKENS, SOURCE, PriceError, PriceTable
from proxy.storage.records import RequestRecord
from proxy.wire.usage import Usage
from tests.conftest import KEYS, MODELS, rows

MODEL = MODELS[0]
ONE_DOLLAR = 1_000_000.0  # per million tokens: $1 a token
THINK_40 = {"generationConfig": {"thinkingConfig": {"thinkingBudget": 40}}}
BODY = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], **THINK_40}
STORED = "SELECT route, prompt_tokens, completion_tokens, total_tokens, thoughts_tokens, cost_usd, price_source, " \
         "price_rates FROM request_log ORDER BY id"


def stored(app):
    return rows(app.config["SQLALCHEMY_DATABASE_URI"], STORED)


def call(client, path, body, **headers):
    answer = client.post(path, json=body, headers=headers)
    answer.get_data()
    answer.close()
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer


# The bug: thoughts were not priced ---------------------------------------------------------------------

def test_at_a_dollar_a_token_every_path_costs_every_billed_token_thoughts_included(make_app):
    app = make_app(MODEL_PRICES={MODEL: {"input": ONE_DOLLAR, "output": ONE_DOLLAR, "cached": ONE_DOLLAR}})
    client = app.test_client()
    native = {"x-goog-api-key": KEYS[0]}
    call(client, f"/v1beta/models/{MODEL}:generateContent", BODY, **native)
    call(client, f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse", BODY, **native)
    openai = {"Authorization": f"Bearer {KEYS[0]}"}
    chat = {"model": MODEL, "reasoning_effort": "low", "messages": [{"role": "user", "content": "hi"}]}
    call(client, "/v1beta/openai/chat/completions", chat, **openai)
    call(client, "/v1beta/openai/chat/completions", {**chat, "stream": True,
                                                     "stream_options": {"include_usage": True}}, **openai)
    recorded = stored(app)
    assert len(recorded) == 4
    for route, prompt, completion, total, thoughts, cost, source, _ in recorded:
        assert thoughts and prompt + completion + thoughts == total, route
        assert cost == pytest.approx(total), route  # $1 for each billed token, none left out
        assert source == "MODEL_PRICES"
    assert [row[4] for row in recorded[:2]] == [40, 40]
    costs = client.get("/analytics/costs").json
    assert costs["total_cost_usd"] == pytest.approx(sum(row[3] for row in recorded))


def test_the_sdk_path_bills_the_thoughts_its_sdk_cannot_name(make_app):
    """google-ai-generativelanguage's usage message has no thoughts_token_count: its total still counts them."""
    model = "gemini-3.1-pro-preview"  # thinks unasked
    app = make_app(GEMINI_MODELS=[model], MODEL_PRICES={model: (ONE_DOLLAR, ONE_DOLLAR, ONE_DOLLAR)})
    answer = call(app.test_client(), "/gemini/generate", {"prompt": {"text": "hi"}}).json
    [(_, prompt, completion, total, thoughts, cost, _, _)] = stored(app)
    assert total == answer["metrics"]["total_tokens"] > prompt + completion
    assert thoughts == total - prompt - completion
    assert cost == pytest.approx(total)


def test_thoughts_a_usage_does_not_name_are_what_its_total_holds_beyond_the_kinds_it_names():
    prices = PriceTable({"m": (1.0, 10.0, 0.1)})
    unnamed = Usage(prompt=10, candidates=1, total=51)
    assert prices.cost("m", unnamed) == pytest.approx((10 * 1.0 + 41 * 10.0) / 1e6)
    said = Usage(prompt=10, candidates=1, thoughts=40, total=51)
    assert prices.cost("m", said) == prices.cost("m", unnamed)


# Each kind, long prompts, batches, tiers ----------------------------------------------------------------

def test_every_kind_at_its_price():
    prices = PriceTable({"m": {"input": 1.0, "output": 10.0, "cached": 0.1}})
    assert prices.cost("m", Usage(prompt=1000)) == pytest.approx(1000 * 1.0 / 1e6)
    assert prices.cost("m", Usage(prompt=1000, cached=600)) == pytest.approx((400 * 1.0 + 600 * 0.1) / 1e6)
    assert prices.cost("m", Usage(tool_use_prompt=30)) == pytest.approx(30 * 1.0 / 1e6)
    assert prices.cost("m", Usage(candidates=7)) == pytest.approx(7 * 10.0 / 1e6)
    assert prices.cost("m", Usage(thoughts=5)) == pytest.approx(5 * 10.0 / 1e6)
    assert prices.cost("m", Usage(prompt=5, cached=9)) == pytest.approx(5 * 0.1 / 1e6)  # cached within prompt


def test_a_prompt_above_200k_tokens_is_billed_whole_at_the_long_context_prices():
    prices = PriceTable()
    pro = prices.rates("gemini-3.1-pro-preview")
    assert (pro.long_input, pro.long_output) == (4.00, 18.00)
    at_limit = Usage(prompt=LONG_PROMPT_TOKENS, cached=1000, candidates=100, thoughts=50)
    above = Usage(prompt=LONG_PROMPT_TOKENS + 1, cached=1000, candidates=100, thoughts=50)
    assert prices.cost("gemini-3.1-pro-preview", at_limit) == pytest.approx(
        ((LONG_PROMPT_TOKENS - 1000) * 2.00 + 1000 * 0.20 + 150 * 12.00) / 1e6)
    assert prices.cost("gemini-3.1-pro-preview", above) == pytest.approx(
        ((LONG_PROMPT_TOKENS + 1 - 1000) * 4.00 + 1000 * 0.40 + 150 * 18.00) / 1e6)
    # A model Google prices the same at any length stays at its one price.
    assert prices.cost("gemini-2.5-flash", above) == pytest.approx(
        ((LONG_PROMPT_TOKENS + 1 - 1000) * 0.30 + 1000 * 0.03 + 150 * 2.50) / 1e6)
    # Sums of many requests are never priced as one long prompt.
    assert prices.cost("gemini-3.1-pro-preview", above, long_context=False) == pytest.approx(
        ((LONG_PROMPT_TOKENS + 1 - 1000) * 2.00 + 1000 * 0.20 + 150 * 12.00) / 1e6)


def test_a_batch_at_half_price_and_the_service_tiers_at_theirs():
    prices = PriceTable({"m": (1.0, 10.0, 0.1)})
    usage = Usage(prompt=1000, candidates=100)
    full = (1000 * 1.0 + 100 * 10.0) / 1e6
    assert prices.cost("m", usage, batch=True) == pytest.approx(full / 2)
    assert prices.cost("m", Usage(prompt=1000, candidates=100, service_tier="flex")) == pytest.approx(full / 2)
    assert prices.cost("m", usage, service_tier="priority") == pytest.approx(full * 1.8)
    assert prices.cost("m", usage, service_tier="standard") == pytest.approx(full)
    assert prices.cost("m", usage, service_tier="someday") == pytest.approx(full)  # a tier not known: list price
    assert prices.cost("m", usage, batch=True, service_tier="priority") == pytest.approx(full / 2)


def test_a_flex_request_is_stored_at_the_flex_price(make_app):
    app = make_app(MODEL_PRICES={MODEL: (1.0, 10.0, 0.1)})
    body = {"contents": BODY["contents"], "serviceTier": "flex"}
    answer = call(app.test_client(), f"/v1beta/models/{MODEL}:generateContent", body, **{"x-goog-api-key": KEYS[0]})
    usage = answer.json["usageMetadata"]
    [(_, _, _, _, _, cost, _, _)] = stored(app)
    assert usage["serviceTier"] == "flex"
    assert cost == pytest.approx((usage["promptTokenCount"] * 1.0 + usage["candidatesTokenCount"] * 10.0) / 1e6 / 2)


def test_the_table_prices_the_current_models_and_their_versions():
    prices = PriceTable()
    for model in ("gemini-3.8-flash", "gemini-3.5-flash", "gemini-3.5-flash-lite", "gemini-3.1-pro-preview",
                  "gemini-3.1-pro-preview-customtools", "gemini-3-flash-preview", "gemini-3-pro-preview",
                  "gemini-3.1-flash-lite-preview", "gemini-2.5-flash-preview-09-2025", "gemini-2.5-pro"):
        assert prices.known(model) and prices.rates(model).output > 0, model
        assert prices.source(model) == SOURCE
    assert prices.rates("gemini-3.5-flash-lite").input == 0.30  # its own price, not 3.5 Flash's
    assert not prices.known("gemini-9-ultra") and prices.cost("gemini-9-ultra", Usage(prompt=10)) == 0.0


def test_a_price_google_announced_ahead_applies_from_its_date():
    prices = PriceTable()
    usage = Usage(prompt=1_000_000)
    assert prices.cost("gemini-3.8-flash", usage, at=datetime(2026, 12, 31, 23, 59)) == pytest.approx(0.75)
    assert prices.cost("gemini-3.8-flash", usage, at=datetime(2027, 1, 1)) == pytest.approx(1.50)
    # The operator's own price for the model holds whatever the date.
    assert PriceTable({"gemini-3.8-flash": (0.5, 1.0)}).cost("gemini-3.8-flash", usage,
                                                              at=datetime(2027, 6, 1)) == pytest.approx(0.5)


# MODEL_PRICES ------------------------------------------------------------------------------------------

def test_model_prices_set_every_field():
    prices = load_settings({"MODEL_PRICES": "x=1/2/0.3;long=4/5/0.6;batch=0.4;flex=0.6;priority=2, "
                                            "gemini-2.5-pro=priority=2.5"})["MODEL_PRICES"]
    table = PriceTable(prices)
    x = table.rates("x")
    assert (x.input, x.output, x.cached, x.long_input, x.long_output, x.long_cached, x.batch, x.flex, x.priority) \
        == (1.0, 2.0, 0.3, 4.0, 5.0, 0.6, 0.4, 0.6, 2.0)
    pro = table.rates("gemini-2.5-pro")  # one field changed, the built-in others kept
    assert (pro.input, pro.output, pro.long_input, pro.priority) == (1.25, 10.00, 2.50, 2.5)
    assert table.source("gemini-2.5-pro") == table.source("x") == "MODEL_PRICES"
    assert table.source("gemini-2.5-flash") == SOURCE


@pytest.mark.parametrize("value, named", [
    ("m=1", "'m=1'"), ("m=1/2/3/4", "'m=1/2/3/4'"), ("m=a/b", "'a/b' is not a number"), ("=1/2", "name"),
    ("m=1/2;flux=0.5", "'flux=0.5' is not a price field"), ("m=1/2;long=4", "'4' should be 2 or 3"),
    ("m=-1/2", "0 or more"), ("m=inf/2", "finite"), ("m=1/2, m=3/4", "m is given twice"),
    ("m=1/2;flex=1;flex=2", "flex is given twice")])
def test_a_bad_model_prices_entry_stops_the_start_naming_it(value, named):
    with pytest.raises(ConfigError, match="MODEL_PRICES") as refused:
        load_settings({"MODEL_PRICES": value})
    assert named in str(refused.value)


def test_a_model_the_table_lacks_needs_both_its_prices_and_the_app_says_which(make_app):
    with pytest.raises(ConfigError, match="MODEL_PRICES: my-tuned-model: .*input and an output price"):
        make_app(MODEL_PRICES=load_settings({"MODEL_PRICES": "my-tuned-model=priority=2"})["MODEL_PRICES"])
    with pytest.raises(PriceError, match="'speed' is not a price field"):
        PriceTable({"m": {"input": 1.0, "output": 2.0, "speed": 3.0}})


price = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)
names = st.from_regex(r"[a-z][a-z0-9.\-]{0,30}", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(names, st.tuples(price, price, st.none() | price, st.none() | st.tuples(price, price),
                                        st.none() | price), min_size=1, max_size=4))
def test_model_prices_written_out_read_back_as_given(entries):
    parts = []
    for model, (input_, output, cached, long_, priority) in entries.items():
        text = f"{model}={input_!r}/{output!r}" + (f"/{cached!r}" if cached is not None else "")
        text += f";long={long_[0]!r}/{long_[1]!r}" if long_ else ""
        text += f";priority={priority!r}" if priority is not None else ""
        parts.append(text)
    table = PriceTable(load_settings({"MODEL_PRICES": ", ".join(parts)})["MODEL_PRICES"])
    for model, (input_, output, cached, long_, priority) in entries.items():
        rates = table.prices[model]
        assert (rates.input, rates.output) == (input_, output)
        assert rates.cached == (cached if cached is not None else pytest.approx(input_ * 0.1))
        assert (rates.long_input, rates.long_output) == (long_ if long_ else (None, None))
        assert rates.priority == (priority if priority is not None else 1.8)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab=/;,.-0123456789eflongxpriotyinfa ", max_size=40))
def test_any_model_prices_text_parses_or_is_refused_by_name(text):
    try:
        prices = load_settings({"MODEL_PRICES": text})["MODEL_PRICES"]
    except ConfigError as exc:
        assert str(exc).startswith("MODEL_PRICES: ")
        return
    try:
        PriceTable(prices)
    except PriceError as exc:
        assert str(exc).startswith("MODEL_PRICES: ")


# Stored once -------------------------------------------------------------------------------------------

def test_a_price_change_after_a_record_is_written_does_not_change_its_reported_cost(make_app):
    app = make_app(MODEL_PRICES={MODEL: (1.0, 10.0, 0.1)})
    client = app.test_client()
    native = {"x-goog-api-key": KEYS[0]}
    call(client, f"/v1beta/models/{MODEL}:generateContent", BODY, **native)
    [(_, prompt, completion, _, thoughts, first, source, rates)] = stored(app)
    assert first == pytest.approx((prompt * 1.0 + (completion + thoughts) * 10.0) / 1e6)
    assert (source, json.loads(rates)["output"]) == ("MODEL_PRICES", 10.0)
    before = client.get("/analytics/costs").json

    app.config["MODEL_PRICES"] = {MODEL: (2.0, 20.0, 0.2)}  # the operator's new prices
    after = client.get("/analytics/costs").json
    assert after["total_cost_usd"] == before["total_cost_usd"] == pytest.approx(first, abs=1e-6)
    call(client, f"/v1beta/models/{MODEL}:generateContent", BODY, **native)
    second = stored(app)[1][5]
    assert second == pytest.approx(2 * first)
    [flash] = [m for m in client.get("/analytics/costs").json["by_model"] if m["model"] == MODEL]
    assert flash["cost_usd"] == pytest.approx(first + second, abs=1e-6)
    assert flash["price_now"]["output"] == 20.0
    assert sorted((p["per_million"]["output"], p["requests"], p["at_read_time"]) for p in flash["prices_used"]) \
        == [(10.0, 1, False), (20.0, 1, False)]


def test_rows_written_before_costs_were_stored_are_costed_at_read_time_and_say_so(app, client):
    with app.app_context():
        db.session.add(RequestLog(request_id="old-1", route="/gemini/generate", status_code=200, latency_ms=1.0,
                                  model_used=MODEL, prompt_tokens=1000, completion_tokens=100, total_tokens=1100,
                                  created_at=datetime.utcnow() - timedelta(minutes=5)))
        db.session.commit()
    [flash] = client.get("/analytics/costs").json["by_model"]
    assert flash["cost_usd"] == pytest.approx((1000 * 0.30 + 100 * 2.50) / 1e6, abs=1e-6)
    assert flash["costed_at_read_time"] == 1
    [used] = flash["prices_used"]
    assert (used["at_read_time"], used["source"], used["cost_usd"]) == (True, SOURCE, None)


def test_a_cache_hit_costs_nothing_and_its_savings_are_reported(make_app):
    app = make_app(CACHE_ENABLED=True, CACHE_TTL_SECONDS=3600.0, CACHE_MAX_ENTRIES=100)
    client = app.test_client()
    body = {"contents": BODY["contents"]}
    for _ in range(2):
        call(client, f"/v1beta/models/{MODEL}:generateContent", body,
             **{"x-goog-api-key": KEYS[0], "X-Proxy-Cache": "on"})
    (_, _, _, _, _, miss, _, _), (_, _, _, _, _, hit, source, _) = stored(app)
    assert miss > 0 and (hit, source) == (0.0, "cache")
    summary = client.get("/analytics/summary").json
    assert summary["cost_usd"] == pytest.approx(miss, abs=1e-6)
    assert summary["cache"]["cost_saved_usd"] == pytest.approx(miss, abs=1e-6)


# Rollups -----------------------------------------------------------------------------------------------

AT = datetime(2026, 5, 4, 10, 0)
WINDOW = {"from": "2026-05-04T00:00:00Z", "to": "2026-05-05T00:00:00Z"}


def test_rolled_up_hours_report_the_costs_their_rows_do(app, client):
    rolled_up_costs_agree(app, client)


@pytest.mark.e2e
def test_rolled_up_costs_agree_on_postgresql(make_app, postgres):
    app = make_app(SQLALCHEMY_DATABASE_URI=postgres.url)
    rolled_up_costs_agree(app, app.test_client())


def rolled_up_costs_agree(app, client):
    """Stored costs (thoughts, cached, tool use, a batch, a tier, a long prompt) and an old row without one."""
    records = app.extensions["records"]
    kinds = [dict(prompt=1000, candidates=100, thoughts=40, cached=300),
             dict(prompt=LONG_PROMPT_TOKENS + 5, candidates=10, tool_use_prompt=7),
             dict(prompt=500, candidates=50, service_tier="priority"),
             dict(prompt=800, candidates=80, thoughts=8, batch=True)]
    with app.app_context():
        for number, kind in enumerate(kinds):
            batch = kind.pop("batch", False)
            usage = Usage(**kind)
            record = RequestRecord(request_id=f"r{number}", created_at=AT + timedelta(minutes=number), route="/x",
                                   status_code=200, latency_ms=1.0, model_used="gemini-2.5-pro", batch=batch,
                                   attempt_count=1).with_usage(usage)
            records.finished(record)
            records.submit(record)
        db.session.add(RequestLog(request_id="old", route="/x", status_code=200, latency_ms=1.0, created_at=AT,
                                  model_used="gemini-2.5-pro", prompt_tokens=100, completion_tokens=10,
                                  thoughts_tokens=5, total_tokens=115))
        db.session.commit()
    prices = PriceTable()
    with app.app_context():
        stored_costs = db.session.execute(db.select(RequestLog.cost_usd).where(
            RequestLog.cost_usd.isnot(None))).scalars().all()
    assert len(stored_costs) == 4
    old = prices.cost("gemini-2.5-pro", Usage(prompt=100, candidates=10, thoughts=5))
    expected = sum(stored_costs) + old

    def reports():
        return [client.get(f"/analytics/{name}", query_string={**WINDOW, **extra}).json
                for name, extra in (("costs", {}), ("summary", {}), ("usage", {"group_by": "hour"}),
                                    ("usage", {"group_by": "model"}))]

    raw = reports()
    with app.app_context():
        assert rollups.roll_up(now=AT + timedelta(days=1)) > 0
    rolled = reports()
    assert raw[0]["total_cost_usd"] == pytest.approx(expected, abs=1e-6)
    assert rolled[0]["total_cost_usd"] == raw[0]["total_cost_usd"]
    assert rolled[0]["by_model"] == raw[0]["by_model"]
    assert rolled[1]["cost_usd"] == raw[1]["cost_usd"] == raw[0]["total_cost_usd"]
    assert rolled[2]["groups"] == raw[2]["groups"] and rolled[3]["groups"] == raw[3]["groups"]
    [pro] = raw[0]["by_model"]
    assert (pro["thoughts_tokens"], pro["cached_tokens"], pro["tool_use_prompt_tokens"], pro["batch_requests"],
            pro["costed_at_read_time"]) == (53, 300, 7, 1, 1)

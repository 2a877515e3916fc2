"""Every billed token kind: read once (wire.usage) from any answer, hostile or not; recorded on every path;
priced by kind (thoughts as output, cached at the cached price, tool-use prompts as input, batches at half)."""
import csv
import io
import json
import math
from datetime import datetime

import pytest
from hypothesis import given, settings, strategies as st

from models import RequestLog, db
from proxy.analytics.pricing import PriceTable
from proxy.emulator import openai_convert, replies
from proxy.wire.stream import iter_json_objects, summarize
from proxy.wire.usage import Usage, count
from tests.conftest import KEYS, MODELS, rows

MODEL = MODELS[0]
NATIVE = f"/v1beta/models/{MODEL}:generateContent"
STREAM = f"/v1beta/models/{MODEL}:streamGenerateContent"
BODY = {"contents": [{"role": "user", "parts": [{"text": "How are thoughts billed?"}]}]}
KINDS = "SELECT prompt_tokens, completion_tokens, total_tokens, cached_tokens, thoughts_tokens, " \
        "tool_use_prompt_tokens, service_tier, batch FROM request_log WHERE route LIKE ? ORDER BY id"

# Reading ------------------------------------------------------------------------------------------------

junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30) | st.sampled_from(["12", " 7 ", "-3", "1e9", "NaN", "99999999999", "0x10"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8)
GEMINI_NAMES = ["promptTokenCount", "candidatesTokenCount", "totalTokenCount", "cachedContentTokenCount",
                "thoughtsTokenCount", "toolUsePromptTokenCount", "serviceTier"]


def sane(usage):
    for name in ("prompt", "candidates", "total", "cached", "thoughts", "tool_use_prompt"):
        value = getattr(usage, name)
        assert value is None or (type(value) is int and 0 <= value <= 2**31 - 1), (name, value)
    assert usage.service_tier is None or (isinstance(usage.service_tier, str) and len(usage.service_tier) <= 20)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(GEMINI_NAMES), junk) | junk)
def test_hostile_usage_metadata_never_raises_and_reads_as_none_or_a_count(metadata):
    sane(Usage.from_gemini(metadata))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["prompt_tokens", "completion_tokens", "total_tokens", "service_tier",
                                        "prompt_tokens_details", "completion_tokens_details"]),
                       junk | st.fixed_dictionaries({"cached_tokens": junk, "reasoning_tokens": junk})) | junk)
def test_hostile_openai_usage_never_raises(usage):
    sane(Usage.from_openai(usage))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.fixed_dictionaries({"usageMetadata": junk}), max_size=4))
def test_a_stream_of_hostile_chunks_summarizes_without_raising(chunks):
    sane(summarize(chunks)["usage"])


@pytest.mark.parametrize("value, expected", [
    (5, 5), ("12", 12), (3.0, 3), (True, None), (-1, None), (math.nan, None), (math.inf, None), (2.5, None),
    (2**31, None), ("1e3", None), ("-4", None), ("\u00b2", None), ("\u0663", None), ({"n": 1}, None), ([1], None), (None, None)])
def test_a_count_is_a_non_negative_integer_or_none(value, expected):
    assert count(value) == expected


def test_every_kind_is_read_from_gemini_and_the_tier_by_its_short_name():
    usage = Usage.from_gemini({"promptTokenCount": 100, "candidatesTokenCount": 20, "totalTokenCount": 150,
                               "cachedContentTokenCount": 60, "thoughtsTokenCount": 25,
                               "toolUsePromptTokenCount": 5, "serviceTier": "SERVICE_TIER_FLEX"})
    assert usage == Usage(100, 20, 150, 60, 25, 5, "flex")
    assert usage.output == 45
    assert Usage.from_gemini(usage.to_gemini()) == usage  # a cached answer keeps them all


def test_openai_reasoning_tokens_are_thoughts_taken_out_of_the_completion():
    usage = Usage.from_openai({"prompt_tokens": 100, "completion_tokens": 45, "total_tokens": 145,
                               "prompt_tokens_details": {"cached_tokens": 60},
                               "completion_tokens_details": {"reasoning_tokens": 25}})
    assert (usage.prompt, usage.candidates, usage.thoughts, usage.cached) == (100, 20, 25, 60)
    # Counted beside the completion (prompt + completion + reasoning is the total): the completion is the answer's.
    beside = Usage.from_openai({"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 145,
                                "completion_tokens_details": {"reasoning_tokens": 25}})
    assert (beside.candidates, beside.thoughts, beside.output) == (20, 25, 45)


def test_a_stream_s_usage_is_its_last_chunk_with_one():
    text = "".join(f"data: {json.dumps(chunk)}\r\n\r\n" for chunk in [
        {"usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 1}},
        {"usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 7, "thoughtsTokenCount": 3}},
        {"candidates": [{"finishReason": "STOP"}]}])
    assert summarize(iter_json_objects(text))["usage"] == Usage(prompt=9, candidates=7, thoughts=3)


def test_usages_sum_for_a_batch():
    total = Usage(10, 2, 12, 4, 1, None, "standard").plus(Usage(5, 3, 8, None, 2, 1, "standard"))
    assert total == Usage(15, 5, 20, 4, 3, 1, "standard")
    assert Usage(service_tier="flex").plus(Usage(service_tier="priority")).service_tier is None


# Prices -------------------------------------------------------------------------------------------------

def test_each_kind_is_billed_at_its_price():
    prices = PriceTable({"m": (1.0, 10.0, 0.1)})
    usage = Usage(prompt=1000, candidates=100, cached=600, thoughts=50, tool_use_prompt=20)
    dollars = ((1000 - 600 + 20) * 1.0 + 600 * 0.1 + (100 + 50) * 10.0) / 1e6
    assert prices.cost("m", usage) == pytest.approx(dollars)
    assert prices.cost("m", usage, batch=True) == pytest.approx(dollars / 2)


def test_a_model_without_a_cached_price_has_a_tenth_of_its_input_price():
    prices = PriceTable({"m": (2.0, 8.0)})  # MODEL_PRICES' documented shape
    assert prices.rates("m").cached == pytest.approx(0.2)  # Google: cached tokens at a 90% discount
    assert prices.price("m") == (2.0, 8.0)
    assert prices.cost("m", Usage(prompt=1000, cached=1000)) == pytest.approx(1000 * 0.2 / 1e6)
    assert prices.cost("nobody-knows", Usage(prompt=10**6)) == 0.0


# Recording on every path --------------------------------------------------------------------------------

RICH = {"cachedContentTokenCount": 4, "thoughtsTokenCount": 11, "toolUsePromptTokenCount": 3,
        "serviceTier": "SERVICE_TIER_STANDARD"}


@pytest.fixture
def rich_usage(monkeypatch):
    """The emulator (a thread of this process in the fast tier) reports every kind Gemini can."""
    plain = replies.usage

    def usage(prompt_tokens, completion_tokens):
        return {**plain(prompt_tokens, completion_tokens), **RICH,
                "totalTokenCount": prompt_tokens + completion_tokens + 11 + 3}

    monkeypatch.setattr(replies, "usage", usage)
    plain_openai = openai_convert.usage

    def openai_usage(chunk):
        found = plain_openai(chunk)
        return {**found, "completion_tokens": found["completion_tokens"] + 11,
                "prompt_tokens_details": {"cached_tokens": 4}, "completion_tokens_details": {"reasoning_tokens": 11}}

    monkeypatch.setattr(openai_convert, "usage", openai_usage)


def recorded(app, route):
    return rows(app.config["SQLALCHEMY_DATABASE_URI"], KINDS.replace("?", f"'%{route}%'"))


def native(client, path, body=BODY, **headers):
    response = client.post(path, json=body, headers={"x-goog-api-key": KEYS[0], **headers})
    response.get_data()
    response.close()
    return response


@pytest.mark.parametrize("path", [NATIVE, STREAM + "?alt=sse", STREAM])
def test_a_native_answer_records_every_kind(app, client, rich_usage, path):
    answer = native(client, path)
    assert answer.status_code == 200
    [(prompt, completion, total, cached, thoughts, tool_use, tier, batch)] = recorded(app, ":")
    assert (cached, thoughts, tool_use, tier, batch) == (4, 11, 3, "standard", 0)
    assert total == prompt + completion + thoughts + tool_use


def test_the_emulators_own_thoughts_tool_use_and_tier_are_recorded_as_it_reports_them(app, client):
    body = {**BODY, "tools": [{"googleSearch": {}}], "serviceTier": "flex",
            "generationConfig": {"thinkingConfig": {"thinkingBudget": 256}}}
    answer = native(client, NATIVE, body=body)
    assert answer.status_code == 200, answer.text
    usage = answer.json["usageMetadata"]
    [(prompt, completion, total, _, thoughts, tool_use, tier, _)] = recorded(app, ":")
    assert (prompt, completion, total, thoughts, tool_use, tier) == (
        usage["promptTokenCount"], usage["candidatesTokenCount"], usage["totalTokenCount"],
        usage["thoughtsTokenCount"], usage["toolUsePromptTokenCount"], "flex")
    assert thoughts > 0 and tool_use > 0


def test_the_emulators_openai_reasoning_tokens_are_recorded_as_thoughts(app, client):
    answer = client.post("/v1beta/openai/chat/completions", headers={"Authorization": f"Bearer {KEYS[0]}"},
                         json={"model": MODEL, "reasoning_effort": "low",
                               "messages": [{"role": "user", "content": "think"}]})
    answer.get_data()
    answer.close()
    assert answer.status_code == 200, answer.text
    used = answer.json["usage"]
    [(prompt, completion, total, _, thoughts, _, _, _)] = recorded(app, "openai")
    assert thoughts == used["completion_tokens_details"]["reasoning_tokens"] > 0
    assert prompt + completion + thoughts == total == used["total_tokens"]


def test_the_openai_compatible_answer_records_cached_and_reasoning_tokens(app, client, rich_usage):
    answer = client.post("/v1beta/openai/chat/completions", headers={"Authorization": f"Bearer {KEYS[0]}"},
                         json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
    answer.get_data()
    answer.close()
    assert answer.status_code == 200, answer.text
    [(prompt, completion, _, cached, thoughts, _, _, batch)] = recorded(app, "openai")
    assert (cached, thoughts, batch) == (4, 11, 0)
    assert completion == answer.json["usage"]["completion_tokens"] - 11  # the answer's own, without thoughts


def test_the_sdk_path_records_the_kinds_its_sdk_reads(app, client, rich_usage):
    answer = client.post("/gemini/generate", json={"prompt": {"text": "How are thoughts billed?"}})
    assert answer.status_code == 200, answer.text
    [(_, _, total, cached, _, _, _, batch)] = recorded(app, "generate")
    assert (cached, batch) == (4, 0)  # the SDK's message has cached_content_token_count, not thoughts
    assert total == answer.json["metrics"]["total_tokens"]


def test_a_cache_hit_records_the_kinds_the_answer_was_stored_with(make_app, rich_usage):
    app = make_app(CACHE_ENABLED=True, CACHE_TTL_SECONDS=3600.0, CACHE_MAX_ENTRIES=100)
    client = app.test_client()
    assert native(client, NATIVE, **{"X-Proxy-Cache": "on"}).headers["X-Cache"] == "MISS"
    hit = native(client, NATIVE, **{"X-Proxy-Cache": "on"})
    assert hit.headers["X-Cache"] == "HIT" and hit.json["usageMetadata"]["thoughtsTokenCount"] == 11
    assert [row[3:7] for row in recorded(app, ":")] == [(4, 11, 3, "standard")] * 2


def test_the_sdk_path_s_cache_keeps_the_kinds(make_app, rich_usage):
    app = make_app(CACHE_ENABLED=True, CACHE_TTL_SECONDS=3600.0, CACHE_MAX_ENTRIES=100)
    client = app.test_client()
    for _ in range(2):
        assert client.post("/gemini/generate", json={"prompt": {"text": "Cache me"}},
                           headers={"X-Proxy-Cache": "on"}).status_code == 200
    assert [row[3] for row in recorded(app, "generate")] == [4, 4]


def test_the_csv_export_has_every_kind(app, client, rich_usage):
    native(client, NATIVE)
    result = app.test_cli_runner().invoke(args=["ops", "export-csv"])
    [row] = list(csv.DictReader(io.StringIO(result.stdout)))
    assert (row["cached_tokens"], row["thoughts_tokens"], row["tool_use_prompt_tokens"], row["service_tier"],
            row["batch"]) == ("4", "11", "3", "standard", "False")
    assert float(row["cost_usd"]) > 0 and row["price_source"] == "default:2026-12-03"


# The reports --------------------------------------------------------------------------------------------

def test_costs_price_each_kind_and_batches_at_half(app, client):
    at = datetime(2026, 5, 4, 10, 30)
    common = dict(route="/v1beta/models/{model}:generateContent", status_code=200, latency_ms=5.0,
                  model_used="gemini-2.5-flash", created_at=at)
    with app.app_context():
        db.session.add_all([
            RequestLog(request_id="kinds-1", prompt_tokens=1000, completion_tokens=100, total_tokens=1150,
                       cached_tokens=400, thoughts_tokens=50, tool_use_prompt_tokens=0, **common),
            RequestLog(request_id="kinds-2", prompt_tokens=1000, completion_tokens=100, total_tokens=1100,
                       batch=True, **common)])
        db.session.commit()
    body = client.get("/analytics/costs", query_string={"from": "2026-05-04T00:00:00Z",
                                                         "to": "2026-05-05T00:00:00Z"}).json
    flash_in, flash_out, flash_cached = 0.30, 2.50, 0.03
    first = (600 * flash_in + 400 * flash_cached + 150 * flash_out) / 1e6
    second = (1000 * flash_in + 100 * flash_out) / 1e6 / 2
    assert body["total_cost_usd"] == pytest.approx(first + second, abs=1e-6)
    [flash] = body["by_model"]
    assert (flash["thoughts_tokens"], flash["cached_tokens"], flash["batch_requests"]) == (50, 400, 1)
    assert body["by_day"][0]["cost_usd"] == pytest.approx(first + second, abs=1e-6)
    summary = client.get("/analytics/summary", query_string={"from": "2026-05-04T00:00:00Z",
                                                              "to": "2026-05-05T00:00:00Z"}).json
    assert summary["cost_usd"] == pytest.approx(first + second, abs=1e-6)

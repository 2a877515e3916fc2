"""Gemini's OpenAI-compatible endpoint through the pass-through, with the official openai SDK as the
client: answers as direct, whole and streamed; the model named in the body is held to ALLOWED_MODELS
and rests per key like any other; usage, model and route are recorded, so quotas and costs count it."""
from collections import Counter

import openai
import pytest

from tests.conftest import KEYS, MODELS, rows, wait_for

pytestmark = pytest.mark.e2e

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Tell me about tides"}]


def sdk(base_url, key=KEYS[0]):
    return openai.OpenAI(api_key=key, base_url=f"{base_url}/v1beta/openai/", max_retries=0, timeout=30)


def test_the_openai_sdk_gets_through_the_proxy_what_it_gets_direct_and_is_recorded(gunicorn, emulator):
    server = gunicorn(WEB_CONCURRENCY=1)
    direct = sdk(emulator.url).chat.completions.create(model=MODELS[0], messages=MESSAGES)
    proxied = sdk(server.url).chat.completions.create(model=MODELS[0], messages=MESSAGES, temperature=0.3)
    assert proxied.choices[0].message.content == direct.choices[0].message.content
    assert proxied.usage.total_tokens == direct.usage.total_tokens > 0

    streamed = list(sdk(server.url).chat.completions.create(
        model=f"models/{MODELS[1]}", messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
    text = "".join(chunk.choices[0].delta.content or "" for chunk in streamed if chunk.choices)
    assert text.startswith("Emulated") and streamed[-1].usage.completion_tokens > 0

    wait_for(lambda: len(rows(server.database_url, "SELECT id FROM request_log")) == 2, message="two records")
    recorded = rows(server.database_url, "SELECT route, model_requested, model_used, streamed, prompt_tokens, "
                    "completion_tokens, total_tokens, temperature, finish_reason FROM request_log ORDER BY id")
    route = "/v1beta/openai/chat/completions"
    assert recorded[0] == (route, MODELS[0], MODELS[0], False, proxied.usage.prompt_tokens,
                           proxied.usage.completion_tokens, proxied.usage.total_tokens, 0.3, "STOP")
    assert recorded[1][:4] == (route, MODELS[1], MODELS[1], True)
    assert recorded[1][6] == streamed[-1].usage.total_tokens
    assert rows(server.database_url, "SELECT stream_format FROM exchanges ORDER BY id") == [(None,), ("sse",)]
    # Costs and usage reports read the same rows: the endpoint is counted like the others.
    assert rows(server.database_url, "SELECT count(*) FROM metrics") == [(2,)]


def test_a_model_outside_allowed_models_is_refused_before_gemini_is_called(gunicorn, emulator):
    server = gunicorn(WEB_CONCURRENCY=1, ALLOWED_MODELS=MODELS[0])
    before = emulator.stats()["total"]
    with pytest.raises(openai.BadRequestError) as refused:
        sdk(server.url).chat.completions.create(model="gemini-2.5-pro", messages=MESSAGES)
    assert "not allowed" in str(refused.value)
    assert emulator.stats()["total"] == before
    assert sdk(server.url).chat.completions.create(model=MODELS[0], messages=MESSAGES).choices


def test_a_server_key_out_of_quota_for_the_model_hands_over_to_the_next(gunicorn, emulator):
    # The client sends no Gemini key of its own (a proxy client key in its place): the pool's keys serve.
    server = gunicorn(WEB_CONCURRENCY=1, GEMINI_API_KEY=f"{KEYS[0]},{KEYS[1]}", API_KEYS="openai-client-key-0123456")
    emulator.fault(status=429, key=KEYS[0], action="chat/completions", times=None)
    emulator.fault(status=429, key=KEYS[1], model=MODELS[1], action="chat/completions", times=None)
    client = sdk(server.url, key="openai-client-key-0123456")
    for _ in range(3):
        assert client.chat.completions.create(model=MODELS[0], messages=MESSAGES).choices
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model=MODELS[1], messages=MESSAGES)
    tried = Counter((seen["model"], seen["key"]) for seen in emulator.requests()
                    if seen["action"] == "openai.chat.completions")
    # Each key is put to rest for the model after its first 429 there, and not tried for it again.
    assert tried == {(MODELS[0], KEYS[0]): 1, (MODELS[0], KEYS[1]): 3, (MODELS[1], KEYS[0]): 1,
                     (MODELS[1], KEYS[1]): 1}

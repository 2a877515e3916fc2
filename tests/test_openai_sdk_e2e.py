"""The openai SDK, unchanged, on Gemini's OpenAI-compatible endpoint through the proxy (two workers, two server
keys, a client key as the SDK's key): chat whole and streamed with usage, embeddings, the model list and one
model, function tools answered with tool_calls whose signed results go back to the signing key (three keys
there), and a model Gemini does not have, raised as openai.NotFoundError with Google's own message."""
import json
import platform

import openai
import pytest

from tests.conftest import KEYS, MODELS, rows, wait_for

pytestmark = pytest.mark.e2e

CLIENT_KEY = "openai-client-key-0123456789"
EMBEDDING_MODEL = "gemini-embedding-001"
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why are there tides?"}]
ROUTE = "/v1beta/openai"
GEMINI3 = "gemini-3.1-pro-preview"
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city, for a number of days.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                   "required": ["city", "days"]}}}]
ROUNDS = 4  # tool calls answered in one conversation: without pinning, three keys would scatter them

# The SDK's first request asks platform.processor(), which runs `uname -p` once and caches it: asked here,
# at collection, as tests/test_emulator_openai.py does.
platform.processor()


@pytest.fixture
def server(gunicorn):
    return gunicorn(GEMINI_API_KEY=f"{KEYS[0]},{KEYS[1]}", API_KEYS=CLIENT_KEY, WEB_CONCURRENCY=2)


def sdk(server):
    return openai.OpenAI(api_key=CLIENT_KEY, base_url=f"{server.url}{ROUTE}/", max_retries=0, timeout=30)


def test_chat_whole_and_streamed_with_usage(server, emulator):
    client = sdk(server)
    answer = client.chat.completions.create(model=MODELS[0], messages=MESSAGES)
    assert answer.choices[0].message.content.startswith(f"Emulated {MODELS[0]} answer")
    assert answer.choices[0].finish_reason == "stop" and answer.usage.total_tokens > 0

    chunks = list(client.chat.completions.create(model=MODELS[0], messages=MESSAGES, stream=True,
                                                 stream_options={"include_usage": True}))
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == answer.choices[0].message.content
    assert chunks[-1].usage.total_tokens == answer.usage.total_tokens

    assert {r["key"] for r in emulator.requests()} <= set(KEYS[:2])  # server keys, never the client's
    wait_for(lambda: len(rows(server.database_url, "SELECT 1 FROM request_log")) == 2, message="two records")
    assert sorted(rows(server.database_url, "SELECT route, model_used, streamed, total_tokens, status_code "
                       "FROM request_log")) == [  # two workers' records, in either order
        (f"{ROUTE}/chat/completions", MODELS[0], False, answer.usage.total_tokens, 200),
        (f"{ROUTE}/chat/completions", MODELS[0], True, answer.usage.total_tokens, 200)]


def test_a_model_gemini_does_not_have_raises_not_found_with_googles_message(server, emulator):
    with pytest.raises(openai.NotFoundError) as raised:
        sdk(server).chat.completions.create(model="gemini-0.0-nonexistent", messages=MESSAGES)
    # The SDK reads OpenAI's shape, {"error": {"message": ...}}: the message is Gemini's, unchanged.
    assert raised.value.status_code == 404
    assert isinstance(raised.value.body, dict), raised.value.body
    assert raised.value.body["message"] == "models/gemini-0.0-nonexistent is not found for API version v1beta."
    wait_for(lambda: rows(server.database_url, "SELECT status_code FROM request_log") == [(404,)],
             message="the refused call's record")


def recorded(server, count):
    wait_for(lambda: len(rows(server.database_url, "SELECT 1 FROM request_log")) == count,
             message=f"{count} records")
    return rows(server.database_url, "SELECT route, method, status_code, client_id FROM request_log ORDER BY id")


def test_embeddings_of_a_list_and_of_a_string(server, emulator):
    client = sdk(server)
    listed = client.embeddings.create(model=EMBEDDING_MODEL, input=["tides", "moon"])  # the SDK asks base64
    assert [item.index for item in listed.data] == [0, 1] and listed.model
    assert len(listed.data[0].embedding) == len(listed.data[1].embedding) > 0
    assert listed.data[0].embedding != listed.data[1].embedding and listed.usage.prompt_tokens > 0
    one = client.embeddings.create(model=EMBEDDING_MODEL, input="tides", encoding_format="float")
    # Either worker, either key: the same text has the same embedding.
    assert one.data[0].embedding == pytest.approx(listed.data[0].embedding, abs=1e-6)

    assert {r["key"] for r in emulator.requests()} <= set(KEYS[:2])
    assert CLIENT_KEY not in json.dumps(emulator.received())
    assert [r[:3] for r in recorded(server, 2)] == [(f"{ROUTE}/embeddings", "POST", 200)] * 2


def test_the_model_list_and_one_model(server, emulator):
    client = sdk(server)
    listed = client.models.list()
    ids = {model.id for model in listed.data}
    assert {f"models/{name}" for name in (*MODELS, GEMINI3, EMBEDDING_MODEL)} <= ids
    assert all(model.object == "model" and model.owned_by == "google" for model in listed.data)
    one = client.models.retrieve(GEMINI3)
    assert (one.id, one.object) == (f"models/{GEMINI3}", "model")
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gemini-0.0-nonexistent")
    assert sorted(r[1:3] for r in recorded(server, 3)) == [("GET", 200), ("GET", 200), ("GET", 404)]


def test_tool_calls_and_their_signed_results_go_back_to_the_signing_key(gunicorn, emulator):
    server = gunicorn(GEMINI_API_KEY=",".join(KEYS), API_KEYS=CLIENT_KEY, WEB_CONCURRENCY=2)
    client = sdk(server)
    messages = [{"role": "system", "content": "Use the tools you have."}]
    for round_ in range(ROUNDS):
        messages.append({"role": "user", "content": f"Please call get_weather for city number {round_}"})
        called = client.chat.completions.create(model=GEMINI3, messages=messages, tools=TOOLS)
        choice = called.choices[0]
        assert choice.finish_reason == "tool_calls", choice
        (call,) = choice.message.tool_calls
        assert call.function.name == "get_weather"
        arguments = json.loads(call.function.arguments)
        assert isinstance(arguments["city"], str) and isinstance(arguments["days"], int)
        # Gemini 3 signs the call; the signature rides in OpenAI's shape as extra_content and must come back.
        assert call.extra_content["google"]["thought_signature"]
        messages += [choice.message.model_dump(exclude_none=True),
                     {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"forecast": "rain"})}]
        answered = client.chat.completions.create(model=GEMINI3, messages=messages, tools=TOOLS)
        assert answered.choices[0].message.content == 'The function get_weather returned {"forecast": "rain"}.'
        messages.append({"role": "assistant", "content": answered.choices[0].message.content})

    chats = [r for r in emulator.requests() if r["action"] == "openai.chat.completions"]
    assert len(chats) == 2 * ROUNDS, [r["action"] for r in emulator.requests()]
    # The emulator (as Gemini) refuses a signature on another key's project: every answer reached its key.
    assert len({r["key"] for r in chats}) == 1, [r["key"] for r in chats]
    assert CLIENT_KEY not in json.dumps(emulator.received())
    assert {r[:3] for r in recorded(server, 2 * ROUNDS)} == {(f"{ROUTE}/chat/completions", "POST", 200)}

"""The openai SDK, unchanged, on Gemini's OpenAI-compatible endpoint through the proxy (two workers, two server
keys, a client key as the SDK's key): chat whole and streamed with usage, embeddings, the model list, and a
model Gemini does not have, raised as openai.NotFoundError with Google's own message."""
import openai
import pytest

from tests.conftest import KEYS, MODELS, rows, wait_for

pytestmark = pytest.mark.e2e

CLIENT_KEY = "openai-client-key-0123456789"
EMBEDDING_MODEL = "gemini-embedding-001"
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why are there tides?"}]
ROUTE = "/v1beta/openai"


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
    assert rows(server.database_url, "SELECT route, model_used, streamed, total_tokens, status_code "
                "FROM request_log ORDER BY id") == [
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

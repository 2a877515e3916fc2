"""google-genai, unchanged, on today's generation through the proxy (three server keys, two workers, a client
key): a chat with function calling and thinking on a Gemini 3 model whose signed history goes back turn after
turn, JSON mode parsed into a pydantic model, and thinking tokens as the SDK and the proxy's records count them."""

import pydantic
import pytest
from google import genai
from google.genai import types

from proxy.emulator import thinking
from tests.conftest import KEYS, rows, wait_settled

pytestmark = pytest.mark.e2e

GEMINI3 = "gemini-3.1-pro-preview"
CLIENT_KEY = "sdk-generation-client-0123456789"
ADMIN_KEY = "sdk-generation-admin-0123456789"  # /metrics, which wait_settled reads, wants it once clients exist
CITIES = ["Oslo", "Lima", "Hanoi", "Quito"]  # a tool call and its answer for each: eight signed turns


@pytest.fixture
def server(gunicorn):
    return gunicorn(GEMINI_API_KEY=",".join(KEYS), API_KEYS=CLIENT_KEY, ADMIN_API_KEY=ADMIN_KEY, WEB_CONCURRENCY=2)


def sdk(server):
    return genai.Client(api_key=CLIENT_KEY, http_options=types.HttpOptions(base_url=server.url, api_version="v1beta"))


def get_weather(city: str, days: int) -> dict:
    """The weather forecast for a city, for a number of days."""
    return {"city": city, "days": days, "forecast": "rain"}


class Recipe(pydantic.BaseModel):
    name: str
    servings: int
    ingredients: list[str]
    vegetarian: bool


def signatures(contents):
    """Every thought signature in the model turns of `contents` (JSON, as the emulator received them), decoded."""
    return [thinking.decoded(part["thoughtSignature"]) for content in contents if content.get("role") == "model"
            for part in content["parts"] if "thoughtSignature" in part]


def test_a_chat_with_tool_calls_and_thinking_keeps_its_signed_history_on_one_key(server, emulator):
    client = sdk(server)  # held: a client the chat outlives closes its connections when collected
    chat = client.chats.create(model=GEMINI3, config=types.GenerateContentConfig(
        tools=[get_weather], thinking_config=types.ThinkingConfig(include_thoughts=True, thinking_level="HIGH"),
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True)))
    signed = []  # the signatures the SDK got back, in order
    for city in CITIES:
        called = chat.send_message(f"Please call get_weather for {city}")
        (call,) = called.function_calls
        assert call.name == "get_weather" and isinstance(call.args["city"], str) and isinstance(call.args["days"], int)
        assert called.usage_metadata.thoughts_token_count > 0
        signed += [part.thought_signature for part in called.candidates[0].content.parts if part.thought_signature]
        result = types.Part.from_function_response(name=call.name, response=get_weather(**call.args))
        answered = chat.send_message(result)
        assert answered.text.startswith("The function get_weather returned"), answered.text
        assert "rain" in answered.text
        signed += [part.thought_signature for part in answered.candidates[0].content.parts if part.thought_signature]
    assert len(signed) >= 2 * len(CITIES)  # every call signed, and every answer's first text part

    turns = [r for r in emulator.requests() if r["action"] == "generateContent"]
    assert len(turns) == 2 * len(CITIES)
    # The whole history went back every time, each signature byte for byte as the SDK received it...
    for number, turn in enumerate(turns):
        assert signatures(turn["body"]["contents"]) == signed[:len(signatures(turn["body"]["contents"]))]
        assert len(turn["body"]["contents"]) == 2 * number + 1
    assert signatures(turns[-1]["body"]["contents"]) == signed[:-1]  # all but the last answer's
    # ...and to the key that made them: a signature is its key's project's, and the emulator (as Gemini)
    # refuses it on another key. Over three keys and two workers, only the proxy's pinning keeps this.
    assert len({turn["key"] for turn in turns}) == 1, [turn["key"] for turn in turns]
    assert CLIENT_KEY not in str(emulator.received())

    wait_settled(server, ADMIN_KEY)
    recorded = rows(server.database_url, "SELECT r.model_used, r.status_code, e.key_source, e.thoughts_tokens "
                    "FROM request_log r JOIN exchanges e ON e.request_log_id = r.id ORDER BY r.id")
    assert len(recorded) == 2 * len(CITIES)
    assert {r[:3] for r in recorded} == {(GEMINI3, 200, "server")}
    assert all(r[3] > 0 for r in recorded)
    assert len(set(rows(server.database_url, "SELECT key_id FROM attempts"))) == 1


def test_a_streamed_chat_with_tool_calls_keeps_its_key_too(server, emulator):
    client = sdk(server)
    chat = client.chats.create(model=GEMINI3, config=types.GenerateContentConfig(
        tools=[get_weather], automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True)))
    for city in CITIES[:2]:
        chunks = list(chat.send_message_stream(f"Please call get_weather for {city}"))
        (call,) = [each for chunk in chunks for each in chunk.function_calls or []]
        assert call.name == "get_weather"
        result = types.Part.from_function_response(name=call.name, response=get_weather(**call.args))
        text = "".join(chunk.text or "" for chunk in chat.send_message_stream(result))
        assert text.startswith("The function get_weather returned"), text
    streams = [r for r in emulator.requests() if r["action"] == "streamGenerateContent"]
    assert len(streams) == 4 and len(signatures(streams[-1]["body"]["contents"])) >= 3
    assert len({r["key"] for r in streams}) == 1, [r["key"] for r in streams]


def test_json_mode_with_a_pydantic_schema_is_parsed_into_an_instance(server, emulator):
    client = sdk(server)
    answer = client.models.generate_content(
        model=GEMINI3, contents="A recipe for soup, please.",
        config=types.GenerateContentConfig(response_mime_type="application/json", response_schema=Recipe))
    assert isinstance(answer.parsed, Recipe), answer.text
    assert answer.parsed == Recipe.model_validate_json(answer.text)
    sent = emulator.requests()[-1]["body"]["generationConfig"]
    assert sent["responseMimeType"] == "application/json"
    assert set(sent["responseSchema"]["properties"]) == set(Recipe.model_fields)


def test_thinking_tokens_are_counted_by_the_sdk_and_recorded_by_the_proxy(server, emulator):
    client = sdk(server)
    answers = [client.models.generate_content(model=GEMINI3, contents="Why are there tides?",
                                              config=types.GenerateContentConfig(thinking_config=config))
               for config in (types.ThinkingConfig(thinking_level="LOW"), types.ThinkingConfig(thinking_level="HIGH"),
                              types.ThinkingConfig(thinking_budget=2048, include_thoughts=True))]
    thoughts = [a.usage_metadata.thoughts_token_count for a in answers]
    assert all(t > 0 for t in thoughts), thoughts
    assert answers[2].candidates[0].content.parts[0].thought is True  # include_thoughts: the thought first
    assert all(a.usage_metadata.total_token_count >= a.usage_metadata.prompt_token_count + t
               + a.usage_metadata.candidates_token_count for a, t in zip(answers, thoughts))

    wait_settled(server, ADMIN_KEY)
    # request_log's thoughts are what costs and reports bill (at the output price); exchanges keep the wire's.
    # Two workers write their own records: compared whatever order they landed in.
    assert sorted(rows(server.database_url, "SELECT r.thoughts_tokens, e.thoughts_tokens, r.total_tokens FROM "
                       "request_log r JOIN exchanges e ON e.request_log_id = r.id")) == sorted(
        (t, t, a.usage_metadata.total_token_count) for a, t in zip(answers, thoughts))

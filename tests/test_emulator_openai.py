"""The emulator's OpenAI-compatible endpoint as the openai SDK uses it: models, embeddings, chat with
function tools (and their thought signatures), JSON response formats and reasoning effort."""
import json
import platform

import jsonschema
import openai
import pytest

from proxy.emulator import replies
from tests.conftest import KEYS

# The openai SDK's first request asks platform.processor(), which runs `uname -p` once and caches it: asked
# here, at collection, so the fast tier's no-process rule holds for the tests themselves.
platform.processor()

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "The weather in a city.",
                                           "parameters": {"type": "object", "properties": {
                                               "city": {"type": "string"}, "days": {"type": "integer", "minimum": 2}},
                                               "required": ["city", "days"]}}}]
ASK = [{"role": "user", "content": "Call get_weather for Oslo"}]


@pytest.fixture
def client(emulator):
    return openai.OpenAI(api_key=KEYS[0], base_url=f"{emulator.url}/v1beta/openai/", max_retries=0, timeout=10)


def test_models_are_listed_and_read_in_openais_shapes(client):
    listed = client.models.list()
    assert {model.id for model in listed.data} == {f"models/{name}" for name in replies.MODELS}
    assert all(model.object == "model" and model.owned_by == "google" for model in listed.data)
    assert client.models.retrieve("gemini-3.8-flash").id == "models/gemini-3.8-flash"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gemini-0-unknown")
    with pytest.raises(openai.NotFoundError):  # a Live model answers only over its WebSocket
        client.chat.completions.create(model="gemini-3.1-flash-live-preview", messages=ASK)


def test_embeddings_of_a_string_or_a_list_in_floats_or_base64(client):
    listed = client.embeddings.create(model="gemini-embedding-001", input=["tides", "moon"])  # the SDK asks base64
    assert [item.index for item in listed.data] == [0, 1]
    assert all(len(item.embedding) == replies.EMBEDDING_SIZE for item in listed.data)
    assert listed.data[0].embedding != listed.data[1].embedding and listed.usage.prompt_tokens > 0
    one = client.embeddings.create(model="gemini-embedding-001", input="tides", encoding_format="float")
    assert one.data[0].embedding == pytest.approx(listed.data[0].embedding, abs=1e-6)
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="gemini-2.5-flash", input="tides")
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="gemini-embedding-001", input=[])


def test_function_tools_answer_with_tool_calls_and_the_result_is_used(client):
    called = client.chat.completions.create(model="gemini-3-flash-preview", messages=ASK, tools=TOOLS)
    choice = called.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather"
    jsonschema.validate(json.loads(call.function.arguments), TOOLS[0]["function"]["parameters"])
    assert call.extra_content["google"]["thought_signature"]  # Gemini 3: sent back with the call
    history = ASK + [choice.message.model_dump(exclude_none=True),
                     {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temperature": 4})}]
    answered = client.chat.completions.create(model="gemini-3-flash-preview", messages=history, tools=TOOLS)
    assert answered.choices[0].message.content == 'The function get_weather returned {"temperature": 4}.'
    unsigned = json.loads(json.dumps(history))
    del unsigned[1]["tool_calls"][0]["extra_content"]
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="gemini-3-flash-preview", messages=unsigned, tools=TOOLS)
    assert "thought_signature" in refused.value.response.text
    streamed = list(client.chat.completions.create(model="gemini-3-flash-preview", messages=ASK, tools=TOOLS,
                                                   stream=True))
    assert streamed[0].choices[0].delta.tool_calls[0].function.name == "get_weather"
    assert streamed[-1].choices[0].finish_reason == "tool_calls"
    said = client.chat.completions.create(model="gemini-2.5-flash", messages=ASK, tools=TOOLS, tool_choice="none")
    assert said.choices[0].message.content.startswith("Emulated") and not said.choices[0].message.tool_calls
    forced = client.chat.completions.create(model="gemini-2.5-flash", tools=TOOLS, tool_choice="required",
                                            messages=[{"role": "user", "content": "Anything"}])
    assert forced.choices[0].message.tool_calls[0].function.name == "get_weather"


def test_response_formats_and_reasoning_effort(client):
    schema = {"type": "object", "properties": {"answer": {"type": "string"}, "score": {"type": "integer",
                                                                                      "minimum": 5}},
              "required": ["answer", "score"]}
    shaped = client.chat.completions.create(model="gemini-2.5-flash", messages=ASK, response_format={
        "type": "json_schema", "json_schema": {"name": "reply", "schema": schema}})
    jsonschema.validate(json.loads(shaped.choices[0].message.content), schema)
    loose = client.chat.completions.create(model="gemini-2.5-flash", messages=ASK,
                                           response_format={"type": "json_object"})
    assert isinstance(json.loads(loose.choices[0].message.content), dict)
    plain = client.chat.completions.create(model="gemini-2.5-flash", messages=ASK)
    assert plain.usage.completion_tokens_details is None
    thought = client.chat.completions.create(model="gemini-2.5-flash", messages=ASK, reasoning_effort="low")
    reasoning = thought.usage.completion_tokens_details.reasoning_tokens
    assert reasoning > 0 and thought.usage.total_tokens == (thought.usage.prompt_tokens
                                                            + thought.usage.completion_tokens + reasoning)

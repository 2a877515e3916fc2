"""The emulator generates as today's Gemini does for what current clients send: Gemini 3 models, system
instructions, function calling, JSON mode, thinking and thought signatures, usage, project-scoped files."""
import base64
import json

import jsonschema
import pydantic
import pytest
import requests
from google import genai
from hypothesis import given, settings
from hypothesis import strategies as st
from google.genai import errors as genai_errors
from google.genai import types

from proxy.emulator import thinking
from proxy.emulator.schema_values import value_for
from tests.conftest import KEYS

GEMINI3 = "gemini-3.1-pro-preview"
FLASH = "gemini-2.5-flash"
WEATHER = {"name": "get_weather", "description": "The weather in a city.", "parameters": {
    "type": "OBJECT", "properties": {
        "city": {"type": "STRING"}, "unit": {"type": "STRING", "enum": ["CELSIUS", "FAHRENHEIT"]},
        "days": {"type": "INTEGER", "minimum": 1, "maximum": 7},
        "stops": {"type": "ARRAY", "minItems": 2, "items": {"type": "OBJECT", "properties": {
            "name": {"type": "STRING"}, "lat": {"type": "NUMBER"}}, "required": ["name", "lat"]}}},
    "required": ["city", "unit", "days", "stops"]}}
SEARCH = {"name": "search_docs", "parametersJsonSchema": {
    "type": "object", "properties": {"query": {"type": "string", "minLength": 3},
                                     "limit": {"type": ["integer", "null"], "exclusiveMinimum": 0}},
    "required": ["query", "limit"], "additionalProperties": False}}
TOOLS = [{"functionDeclarations": [WEATHER, SEARCH]}]


def lowered(schema):
    """Gemini's OpenAPI subset (upper-case types) as the JSON Schema jsonschema checks."""
    if isinstance(schema, dict):
        return {k: (v.lower() if k == "type" and isinstance(v, str) else lowered(v)) for k, v in schema.items()}
    if isinstance(schema, list):
        return [lowered(item) for item in schema]
    return schema


def generate(emulator, body, model=FLASH, key=KEYS[0], stream=False):
    action = "streamGenerateContent?alt=sse" if stream else "generateContent"
    response = requests.post(f"{emulator.url}/v1beta/models/{model}:{action}", json=body, timeout=10,
                             headers={"x-goog-api-key": key})
    if stream and response.status_code == 200:
        return response.status_code, [json.loads(line[6:]) for line in response.text.splitlines()
                                      if line.startswith("data: ")]
    return response.status_code, response.json()


def parts_of(answer):
    return answer["candidates"][0]["content"]["parts"]


def user(text):
    return {"role": "user", "parts": [{"text": text}]}


@pytest.mark.parametrize("model", ["gemini-3.5-flash-lite", "gemini-3.8-flash", "gemini-3.1-pro-preview",
                                   "gemini-3-pro-preview", "gemini-3-flash-preview", "gemini-3.5-flash",
                                   "gemini-3.1-flash-lite-preview", "gemini-3.1-flash-lite", "gemini-2.5-flash"])
def test_todays_models_are_listed_and_answer(emulator, model):
    listed = requests.get(f"{emulator.url}/v1beta/models", headers={"x-goog-api-key": KEYS[0]}, timeout=5).json()
    assert f"models/{model}" in [m["name"] for m in listed["models"]]
    status, answer = generate(emulator, {"contents": [user("hello")]}, model)
    assert status == 200 and answer["modelVersion"] == model
    assert generate(emulator, {"contents": [user("hello")]}, "gemini-0-unknown")[0] == 404


def test_a_system_instruction_shows_in_the_answer_and_its_tokens_are_counted(emulator):
    plain = generate(emulator, {"contents": [user("Tell me about tides")]})[1]
    for spelling in ("systemInstruction", "system_instruction"):
        status, told = generate(emulator, {"contents": [user("Tell me about tides")],
                                           spelling: {"parts": [{"text": "Answer like a pirate."}]}})
        assert status == 200 and "Answer like a pirate." in parts_of(told)[0]["text"]
        assert told["usageMetadata"]["promptTokenCount"] > plain["usageMetadata"]["promptTokenCount"]
    assert "system instruction" not in parts_of(plain)[0]["text"]
    request = {"contents": [user("Tell me about tides")], "systemInstruction": {"parts": [{"text": "Be a pirate."}]}}
    counted = requests.post(f"{emulator.url}/v1beta/models/{FLASH}:countTokens", timeout=5, json={
        "generateContentRequest": {"model": f"models/{FLASH}", **request}}, headers={"x-goog-api-key": KEYS[0]})
    assert counted.json()["totalTokens"] == usage(generate(emulator, request)[1])["promptTokenCount"]


def test_a_prompt_naming_a_declared_function_gets_a_call_whose_args_fit_its_schema(emulator):
    status, answer = generate(emulator, {"contents": [user("Use get_weather for Oslo")], "tools": TOOLS})
    assert status == 200 and answer["candidates"][0]["finishReason"] == "STOP"
    (part,) = parts_of(answer)
    assert part["functionCall"]["name"] == "get_weather"
    jsonschema.validate(part["functionCall"]["args"], lowered(WEATHER["parameters"]))
    assert part["functionCall"]["args"]["unit"] == "CELSIUS" and len(part["functionCall"]["args"]["stops"]) == 2
    called = parts_of(generate(emulator, {"contents": [user("Please search_docs now")], "tools": [
        {"function_declarations": [WEATHER, SEARCH]}]})[1])[0]["functionCall"]
    assert called["name"] == "search_docs"
    jsonschema.validate(called["args"], SEARCH["parametersJsonSchema"])


def test_functions_named_together_are_called_in_parallel_and_only_the_first_is_signed(emulator):
    asked = user("Run search_docs and get_weather")
    status, answer = generate(emulator, {"contents": [asked], "tools": TOOLS}, GEMINI3)
    assert status == 200
    parts = parts_of(answer)
    assert [p["functionCall"]["name"] for p in parts] == ["get_weather", "search_docs"]
    assert parts[0]["thoughtSignature"] and "thoughtSignature" not in parts[1]
    replies_ = {"role": "user", "parts": [{"functionResponse": {"name": p["functionCall"]["name"], "response": {
        "n": n}}} for n, p in enumerate(parts)]}
    contents = [asked, answer["candidates"][0]["content"], replies_]
    status, told = generate(emulator, {"contents": contents, "tools": TOOLS}, GEMINI3)
    assert status == 200 and parts_of(told)[0]["text"] == ('The function get_weather returned {"n": 0}. '
                                                          'The function search_docs returned {"n": 1}.')


def test_the_calling_mode_decides_between_a_call_and_text(emulator):
    def config(mode, **more):
        return {"functionCallingConfig": {"mode": mode, **more}}
    body = {"contents": [user("What now?")], "tools": TOOLS}
    assert "text" in parts_of(generate(emulator, body)[1])[0]  # AUTO and no function named: text
    forced = parts_of(generate(emulator, {**body, "toolConfig": config("ANY")})[1])[0]
    assert forced["functionCall"]["name"] == "get_weather"
    allowed = parts_of(generate(emulator, {**body, "toolConfig": config("ANY", allowedFunctionNames=[
        "search_docs"])})[1])[0]
    assert allowed["functionCall"]["name"] == "search_docs"
    named = {**body, "contents": [user("Use get_weather")], "toolConfig": config("NONE")}
    assert "text" in parts_of(generate(emulator, named)[1])[0]
    # The system instruction names every tool (the Gemini CLI's does): only the user's last text counts.
    told = {**body, "systemInstruction": {"parts": [{"text": "Tools: get_weather, search_docs"}]}}
    assert "text" in parts_of(generate(emulator, told)[1])[0]


def test_a_turn_of_function_responses_is_answered_with_text_that_uses_them(emulator):
    call = {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}]}
    reply = {"role": "user", "parts": [{"functionResponse": {"name": "get_weather",
                                                             "response": {"temperature": 21, "sky": "clear"}}}]}
    status, answer = generate(emulator, {"contents": [user("Use get_weather for Oslo"), call, reply],
                                         "tools": TOOLS})
    assert status == 200
    assert parts_of(answer)[0]["text"] == 'The function get_weather returned {"sky": "clear", "temperature": 21}.'


def test_a_streamed_call_arrives_whole_in_one_chunk(emulator):
    status, chunks = generate(emulator, {"contents": [user("get_weather please")], "tools": TOOLS}, GEMINI3,
                              stream=True)
    assert status == 200 and len(chunks) == 1
    (part,) = parts_of(chunks[0])
    assert part["functionCall"]["name"] == "get_weather" and part["thoughtSignature"]
    assert chunks[0]["candidates"][0]["finishReason"] == "STOP"


CLASSIFIER = {"type": "OBJECT", "properties": {  # the Gemini CLI's router (classifierStrategy.ts)
    "reasoning": {"type": "STRING", "description": "A brief, step-by-step explanation."},
    "model_choice": {"type": "STRING", "enum": ["flash", "pro"]}}, "required": ["reasoning", "model_choice"]}
NUMERICAL = {"type": "OBJECT", "properties": {  # numericalClassifierStrategy.ts
    "complexity_reasoning": {"type": "STRING"}, "complexity_score": {"type": "INTEGER"}},
    "required": ["complexity_reasoning", "complexity_score"]}


@pytest.mark.parametrize("field, schema", [
    ("responseJsonSchema", CLASSIFIER), ("responseJsonSchema", NUMERICAL), ("responseSchema", CLASSIFIER),
    ("responseSchema", WEATHER["parameters"]), ("response_json_schema", SEARCH["parametersJsonSchema"]),
    ("responseJsonSchema", {"type": "object", "properties": {"tags": {"type": "array", "minItems": 3,
                                                                      "uniqueItems": True, "items": {"type": "string"}},
                                                             "choice": {"anyOf": [{"type": "integer"},
                                                                                  {"type": "null"}]}},
                            "required": ["tags", "choice"]}),
])
def test_json_mode_answers_json_that_fits_the_schema(emulator, field, schema):
    config = {"responseMimeType": "application/json", field: schema, "maxOutputTokens": 1024,
              "thinkingConfig": {"includeThoughts": True, "thinkingLevel": "HIGH"}}
    status, answer = generate(emulator, {"contents": [user("Route this")], "generationConfig": config},
                              "gemini-3.5-flash-lite")
    assert status == 200
    text = "".join(p["text"] for p in parts_of(answer) if not p.get("thought"))
    jsonschema.validate(json.loads(text), lowered(schema))
    if schema is NUMERICAL:
        assert 1 <= json.loads(text)["complexity_score"] <= 100  # the CLI's zod check
    streamed = generate(emulator, {"contents": [user("Route this")], "generationConfig": config},
                        "gemini-3.5-flash-lite", stream=True)[1]
    assert "".join(p["text"] for c in streamed for p in parts_of(c) if not p.get("thought")) == text


def test_json_mode_without_a_schema_and_enum_mode(emulator):
    plain = generate(emulator, {"contents": [user("hi")], "generationConfig": {
        "responseMimeType": "application/json"}})[1]
    assert isinstance(json.loads(parts_of(plain)[0]["text"]), dict)
    chosen = generate(emulator, {"contents": [user("hi")], "generationConfig": {
        "responseMimeType": "text/x.enum", "responseSchema": {"type": "STRING", "enum": ["red", "green"]}}})[1]
    assert parts_of(chosen)[0]["text"] == "red"
    assert generate(emulator, {"contents": [user("hi")], "generationConfig": {
        "responseMimeType": "text/x.enum"}})[0] == 400


def usage(answer):
    return answer["usageMetadata"]


def test_thinking_tokens_follow_the_model_and_the_thinking_config(emulator):
    def think(model, thinking=None):
        body = {"contents": [user("Explain tides")]}
        if thinking is not None:
            body["generationConfig"] = {"thinkingConfig": thinking}
        status, answer = generate(emulator, body, model)
        assert status == 200, answer
        return answer

    default3 = usage(think(GEMINI3))
    assert default3["thoughtsTokenCount"] > 0
    assert default3["totalTokenCount"] == (default3["promptTokenCount"] + default3["candidatesTokenCount"]
                                           + default3["thoughtsTokenCount"])
    assert "thoughtsTokenCount" not in usage(think(FLASH))  # 2.5 Flash thinks only when asked
    assert usage(think(FLASH, {"thinkingBudget": 16}))["thoughtsTokenCount"] == 16
    assert "thoughtsTokenCount" not in usage(think(FLASH, {"thinkingBudget": 0}))
    assert usage(think("gemini-2.5-pro"))["thoughtsTokenCount"] > 0
    low, high = (usage(think(GEMINI3, {"thinkingLevel": level}))["thoughtsTokenCount"] for level in ("low", "HIGH"))
    assert 0 < low < high
    shown = parts_of(think(GEMINI3, {"includeThoughts": True}))
    assert shown[0]["thought"] is True and "thought" not in shown[1] and shown[1]["text"].startswith("Emulated")
    assert "thought" not in parts_of(think(GEMINI3))[0]


def conversation(emulator, key=KEYS[0], model=GEMINI3):
    """A Gemini 3 call and the contents that send its function response back."""
    status, answer = generate(emulator, {"contents": [user("get_weather for Oslo")], "tools": TOOLS}, model, key)
    assert status == 200
    called = answer["candidates"][0]["content"]
    reply = {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"t": 3}}}]}
    return [user("get_weather for Oslo"), called, reply]


def test_a_gemini3_call_is_signed_and_its_signature_must_come_back(emulator):
    contents = conversation(emulator)
    signature = contents[1]["parts"][0]["thoughtSignature"]
    assert base64.b64decode(signature) and KEYS[0] not in base64.b64decode(signature).decode("latin-1")
    status, answer = generate(emulator, {"contents": contents, "tools": TOOLS}, GEMINI3)
    assert status == 200 and parts_of(answer)[0]["text"].startswith("The function get_weather returned")
    assert parts_of(answer)[0]["thoughtSignature"]  # a text answer's first part is signed too
    unsigned = json.loads(json.dumps(contents))
    del unsigned[1]["parts"][0]["thoughtSignature"]
    status, refused = generate(emulator, {"contents": unsigned, "tools": TOOLS}, GEMINI3)
    assert status == 400 and refused["error"]["status"] == "INVALID_ARGUMENT"
    assert refused["error"]["message"].startswith("Function call is missing a thought_signature in functionCall "
                                                  "parts.")
    assert "`default_api:get_weather` , position 2" in refused["error"]["message"]
    assert generate(emulator, {"contents": unsigned, "tools": TOOLS}, FLASH)[0] == 200  # 2.5 does not insist
    unsigned[1]["parts"][0]["thoughtSignature"] = "skip_thought_signature_validator"  # Google's documented bypass
    assert generate(emulator, {"contents": unsigned, "tools": TOOLS}, GEMINI3)[0] == 200


def test_a_signature_is_good_only_for_its_project_and_model(emulator):
    contents = conversation(emulator)
    status, refused = generate(emulator, {"contents": contents, "tools": TOOLS}, GEMINI3, KEYS[1])
    assert status == 400 and "thought signature" in refused["error"]["message"]
    assert generate(emulator, {"contents": contents, "tools": TOOLS}, "gemini-3-flash-preview")[0] == 400
    # Keys of one project share its signatures, as they share its resources.
    emulator.configure(projects={KEYS[0]: "project-a", KEYS[1]: "project-a"})
    shared = conversation(emulator)
    assert generate(emulator, {"contents": shared, "tools": TOOLS}, GEMINI3, KEYS[1])[0] == 200
    assert generate(emulator, {"contents": shared, "tools": TOOLS}, GEMINI3, KEYS[2])[0] == 400
    # Earlier turns are not checked: only the current turn's steps.
    later = contents + [{"role": "model", "parts": [{"text": "It is 3 degrees."}]}, user("Thanks")]
    assert generate(emulator, {"contents": later, "tools": TOOLS}, "gemini-3-flash-preview", KEYS[2])[0] == 200


def test_built_in_tools_and_the_service_tier_show_in_usage(emulator):
    searched = usage(generate(emulator, {"contents": [user("news?")], "tools": [{"googleSearch": {}}]})[1])
    assert searched["toolUsePromptTokenCount"] > 0
    assert searched["totalTokenCount"] == (searched["promptTokenCount"] + searched["candidatesTokenCount"]
                                           + searched["toolUsePromptTokenCount"])
    for tier in ("flex", "standard", "priority"):
        assert usage(generate(emulator, {"contents": [user("hi")], "serviceTier": tier})[1])["serviceTier"] == tier
    assert "serviceTier" not in usage(generate(emulator, {"contents": [user("hi")]})[1])
    streamed = requests.post(f"{emulator.url}/v1beta/models/{FLASH}:streamGenerateContent?alt=sse", timeout=5,
                             json={"contents": [user("hi")], "serviceTier": "SERVICE_TIER_PRIORITY"},
                             headers={"x-goog-api-key": KEYS[0]})
    assert streamed.headers["x-gemini-service-tier"] == "priority" and '"serviceTier": "priority"' in streamed.text
    assert generate(emulator, {"contents": [user("hi")], "serviceTier": "express"})[0] == 400
    assert "toolUsePromptTokenCount" not in usage(generate(emulator, {"contents": [user("hi")]})[1])


def upload(emulator, key):
    began = requests.post(f"{emulator.url}/upload/v1beta/files", json={"file": {"displayName": "n"}}, timeout=5,
                          headers={"x-goog-api-key": key, "X-Goog-Upload-Protocol": "resumable",
                                   "X-Goog-Upload-Command": "start", "X-Goog-Upload-Header-Content-Length": "5",
                                   "X-Goog-Upload-Header-Content-Type": "text/plain"})
    done = requests.post(began.headers["X-Goog-Upload-URL"], data=b"notes", timeout=5, headers={
        "X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0"})
    return done.json()["file"]


def test_a_file_or_store_of_another_project_is_refused_with_403(emulator):
    file = upload(emulator, KEYS[0])
    file_id = file["name"].split("/")[1]
    for uri in (file["uri"], file["name"], f"https://generativelanguage.googleapis.com/v1beta/{file['name']}"):
        body = {"contents": [{"role": "user", "parts": [{"text": "Summarise"}, {"fileData": {
            "fileUri": uri, "mimeType": "text/plain"}}]}]}
        assert generate(emulator, body, key=KEYS[0])[0] == 200
        status, refused = generate(emulator, body, key=KEYS[1])
        assert status == 403 and refused["error"]["status"] == "PERMISSION_DENIED"
        assert refused["error"]["message"] == (f"You do not have permission to access the File {file_id} or it "
                                               "may not exist.")
    unknown = {"contents": [{"parts": [{"fileData": {"fileUri": "files/nosuchfile"}}]}]}
    assert generate(emulator, unknown)[0] == 403
    video = {"contents": [{"parts": [{"fileData": {"fileUri": "https://www.youtube.com/watch?v=abc"}}]}]}
    assert generate(emulator, video)[0] == 200
    store = requests.post(f"{emulator.url}/v1beta/fileSearchStores", json={"displayName": "s"}, timeout=5,
                          headers={"x-goog-api-key": KEYS[0]}).json()["name"]
    searching = {"contents": [user("find")], "tools": [{"fileSearch": {"fileSearchStoreNames": [store]}}]}
    assert generate(emulator, searching, key=KEYS[0])[0] == 200
    status, refused = generate(emulator, searching, key=KEYS[1])
    assert status == 403 and store in refused["error"]["message"]


@pytest.fixture
def client(emulator):
    return genai.Client(api_key=KEYS[0], http_options=types.HttpOptions(base_url=emulator.url))


class Route(pydantic.BaseModel):
    reasoning: str
    model_choice: str
    confidence: float
    steps: list[int]


def test_the_sdk_calls_a_function_and_sends_the_signed_call_back(client):
    def get_weather(city: str, days: int) -> dict:
        """The weather in a city."""
        return {"city": city, "days": days}

    config = types.GenerateContentConfig(tools=[get_weather], automatic_function_calling=types.
                                         AutomaticFunctionCallingConfig(disable=True))
    first = client.models.generate_content(model=GEMINI3, contents="Call get_weather for Oslo", config=config)
    (call,) = first.function_calls
    assert call.name == "get_weather" and isinstance(call.args["city"], str) and isinstance(call.args["days"], int)
    assert first.candidates[0].content.parts[0].thought_signature
    history = [types.Content(role="user", parts=[types.Part(text="Call get_weather for Oslo")]),
               first.candidates[0].content,
               types.Content(role="user", parts=[types.Part.from_function_response(
                   name=call.name, response=get_weather(**call.args))])]
    second = client.models.generate_content(model=GEMINI3, contents=history, config=config)
    assert second.text.startswith("The function get_weather returned")
    assert json.dumps(get_weather(**call.args), sort_keys=True) in second.text
    bare = history[:1] + [types.Content(role="model", parts=[types.Part(function_call=call)])] + history[2:]
    with pytest.raises(genai_errors.ClientError) as refused:
        client.models.generate_content(model=GEMINI3, contents=bare, config=config)
    assert refused.value.code == 400 and "thought_signature" in refused.value.message


def test_a_chat_sends_its_signatures_back_in_either_base64_alphabet(client):
    def get_weather(city: str) -> dict:
        """The weather in a city."""
        return {"city": city}

    for number in range(6):  # signatures differ by prompt: some have + or / in standard base64
        chat = client.chats.create(model=GEMINI3, config=types.GenerateContentConfig(
            tools=[get_weather], automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True)))
        first = chat.send_message(f"Please call get_weather for city number {number}")
        assert first.function_calls
        second = chat.send_message(types.Part.from_function_response(name="get_weather", response={"x": number}))
        assert second.text.startswith("The function get_weather returned")


def test_a_signature_is_read_in_both_alphabets_and_garbage_is_refused():
    signature = thinking.sign("project", GEMINI3, "salt with a + in it 7")
    url_safe = base64.urlsafe_b64encode(base64.b64decode(signature)).decode().rstrip("=")
    assert thinking.valid(signature, "project", GEMINI3) and thinking.valid(url_safe, "project", GEMINI3)
    for garbage in ("c2lnbmF0dXJl", "not base64 at all!", "", signature[:-4]):
        assert not thinking.valid(garbage, "project", GEMINI3)
    assert not thinking.valid(signature, "project", "gemini-3-flash-preview")


def test_the_sdk_asks_for_a_service_tier_and_is_told_it(client, emulator):
    answer = client.models.generate_content(model=FLASH, contents="hi", config=types.GenerateContentConfig(
        service_tier="flex"))
    assert emulator.requests()[-1]["body"]["serviceTier"] == "flex"
    assert answer.sdk_http_response.headers["x-gemini-service-tier"] == "flex"


def test_the_sdk_parses_json_mode_into_a_pydantic_model_and_reads_thoughts(client):
    routed = client.models.generate_content(model="gemini-3.5-flash-lite", contents="Route: fix a typo",
                                            config=types.GenerateContentConfig(response_mime_type="application/json",
                                                                               response_schema=Route))
    assert isinstance(routed.parsed, Route) and len(routed.parsed.steps) >= 1
    thought = client.models.generate_content(model="gemini-3-flash-preview", contents="Explain tides",
                                             config=types.GenerateContentConfig(thinking_config=types.ThinkingConfig(
                                                 include_thoughts=True, thinking_level="LOW")))
    assert thought.candidates[0].content.parts[0].thought is True
    assert thought.text.startswith("Emulated gemini-3-flash-preview") and thought.usage_metadata.thoughts_token_count
    streamed = list(client.models.generate_content_stream(model=GEMINI3, contents="Say hi"))
    assert "".join(chunk.text or "" for chunk in streamed).startswith(f"Emulated {GEMINI3} answer to: Say hi")
    with pytest.raises(genai_errors.ClientError):
        client.models.generate_content(model="gemini-2.5-pro", contents="x", config=types.GenerateContentConfig(
            thinking_config=types.ThinkingConfig(thinking_budget=0)))


def _bounds(draw_pair, low_name, high_name):
    return st.tuples(st.none() | draw_pair, st.none() | draw_pair).map(
        lambda pair: {name: value for name, value in zip((low_name, high_name), sorted(
            [v for v in pair if v is not None])) if value is not None} if all(v is not None for v in pair)
        else {low_name: pair[0]} if pair[0] is not None else {high_name: pair[1]} if pair[1] is not None else {})


_NAMES = st.text("abcdefghij_", min_size=1, max_size=8)
_LEAVES = st.one_of(
    st.builds(lambda b: {"type": "string", **b}, _bounds(st.integers(0, 40), "minLength", "maxLength")),
    st.sampled_from(["date-time", "uuid", "email", "date", "ipv4"]).map(lambda f: {"type": "string", "format": f}),
    st.builds(lambda b: {"type": "integer", **b}, _bounds(st.integers(-50, 50), "minimum", "maximum")),
    st.builds(lambda low, gap: {"type": "integer", "exclusiveMinimum": low, "maximum": low + 1 + gap},
              st.integers(-50, 50), st.integers(0, 5)),
    st.builds(lambda b: {"type": "number", **b}, _bounds(st.floats(-1e6, 1e6), "minimum", "maximum")),
    st.builds(lambda low, gap: {"type": "number", "exclusiveMinimum": low, "exclusiveMaximum": low + gap},
              st.floats(-1e3, 1e3), st.floats(0.001, 10)),
    st.just({"type": "boolean"}), st.just({"type": "null"}),
    st.lists(st.one_of(st.text(max_size=5), st.integers()), min_size=1, max_size=4, unique=True).map(
        lambda values: {"enum": values}),
    st.integers().map(lambda value: {"const": value}),
)


def _composite(children):
    objects = st.dictionaries(_NAMES, children, max_size=4).flatmap(lambda properties: st.builds(
        lambda required, closed: {"type": "object", "properties": properties, "required": required,
                                  **({"additionalProperties": False} if closed else {})},
        st.lists(st.sampled_from(sorted(properties)), unique=True) if properties else st.just([]), st.booleans()))
    arrays = st.builds(lambda items, bounds: {"type": "array", "items": items, **bounds}, children,
                       _bounds(st.integers(0, 5), "minItems", "maxItems"))
    either = st.lists(children, min_size=1, max_size=3).map(lambda options: {"anyOf": options})
    nullable = children.filter(lambda s: isinstance(s.get("type"), str)).map(
        lambda s: {**s, "type": [s["type"], "null"]})
    return st.one_of(objects, arrays, either, nullable)


SCHEMAS = st.recursive(_LEAVES, _composite, max_leaves=12)


def _upper(schema):
    """The same schema in Gemini's OpenAPI spelling: upper-case type names."""
    if isinstance(schema, dict):
        return {k: (v.upper() if k == "type" and isinstance(v, str) else _upper(v)) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_upper(item) for item in schema]
    return schema


@settings(max_examples=300, deadline=None)
@given(SCHEMAS)
def test_a_value_made_for_any_schema_validates_against_it(schema):
    value = value_for(schema)
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(value)
    assert value_for(_upper(schema)) == value == value_for(schema)  # upper case alike, and deterministic


def test_refs_all_of_and_recursive_schemas_end_in_valid_values():
    tree = {"$defs": {"node": {"type": "object", "properties": {"name": {"type": "string"}, "children": {
        "type": "array", "items": {"$ref": "#/$defs/node"}}}, "required": ["name", "children"]}},
        "allOf": [{"$ref": "#/$defs/node"}, {"properties": {"size": {"type": "integer", "minimum": 3}},
                                             "required": ["size"]}]}
    value = value_for(tree)
    jsonschema.validate(value, tree)
    assert value["size"] == 3


def test_interactions_errors_carry_string_codes(emulator):
    def create(body, key=KEYS[0]):
        headers = {"x-goog-api-key": key} if key else {}
        response = requests.post(f"{emulator.url}/v1beta/interactions", json=body, headers=headers, timeout=5)
        return response.status_code, response.json()["error"]

    assert create({"input": "hi"}) == (400, {"code": "invalid_request", "message": "One of model or agent is "
                                                                                   "required."})
    assert create({"model": "gemini-0-unknown", "input": "hi"})[1]["code"] == "model_not_found"
    assert create({"model": FLASH, "input": "hi", "previous_interaction_id": "nope"})[1]["code"] == "not_found"
    status, error = create({"model": FLASH, "input": "hi"}, key="")
    assert status == 403 and error["code"] == "authentication" and error["message"]

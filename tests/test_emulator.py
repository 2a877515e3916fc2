"""The emulator is faithful: both official SDKs, pointed at it directly, parse every answer."""
import json
import warnings

import pytest
import requests

from tests.conftest import KEYS

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import google.generativeai as legacy
from google import genai
from google.api_core import exceptions as legacy_errors
from google.genai import errors as genai_errors
from google.genai import types

MODEL = "gemini-2.5-flash"


@pytest.fixture
def legacy_model(emulator):
    legacy.configure(api_key=KEYS[0], transport="rest", client_options={"api_endpoint": emulator.url})
    return legacy.GenerativeModel(MODEL)


@pytest.fixture
def genai_client(emulator):
    return genai.Client(api_key=KEYS[0], http_options=types.HttpOptions(base_url=emulator.url))


NO_RETRY = {"retry": None, "timeout": 10}


def test_legacy_sdk_generates_streams_counts_and_lists(legacy_model, emulator):
    response = legacy_model.generate_content("hello", request_options=NO_RETRY)
    assert response.text.startswith("Emulated gemini-2.5-flash answer to: hello")
    assert response.usage_metadata.total_token_count > 0
    assert response.candidates[0].finish_reason.name == "STOP"
    # The legacy SDK asks for integer enums; the emulator answers in kind, as Google does.
    assert "enum-encoding=int" in emulator.requests()[-1]["query"]["$alt"]
    chunks = list(legacy_model.generate_content("hello", stream=True, request_options=NO_RETRY))
    assert len(chunks) > 1 and "".join(c.text for c in chunks) == response.text
    assert chunks[-1].usage_metadata.candidates_token_count == response.usage_metadata.candidates_token_count
    assert legacy_model.count_tokens("one two three four", request_options=NO_RETRY).total_tokens > 0
    assert emulator.requests()[-1]["body"].get("generateContentRequest")  # the legacy request form
    names = [model.name for model in legacy.list_models(request_options=NO_RETRY)]
    assert "models/gemini-2.5-flash" in names and "models/text-embedding-004" in names
    assert legacy.get_model("models/gemini-2.5-pro").display_name == "Gemini 2.5 Pro"
    embedding = legacy.embed_content(model="models/text-embedding-004", content="hi", request_options=NO_RETRY)
    assert len(embedding["embedding"]) == 768


@pytest.mark.parametrize("fault,exception", [
    ({"status": 429}, legacy_errors.TooManyRequests),
    ({"status": 503}, legacy_errors.ServiceUnavailable),
    ({"status": 500}, legacy_errors.InternalServerError),
    ({"status": 504}, legacy_errors.GatewayTimeout),
    ({"status": 400}, legacy_errors.BadRequest),
])
def test_legacy_sdk_raises_by_status(legacy_model, emulator, fault, exception):
    emulator.fault(**fault)
    with pytest.raises(exception):
        legacy_model.generate_content("hello", request_options=NO_RETRY)


def test_legacy_sdk_sees_quota_details(legacy_model, emulator):
    emulator.fault(status=429, retry_delay="7s", per_day=True)
    with pytest.raises(legacy_errors.TooManyRequests) as caught:
        legacy_model.generate_content("hello", request_options=NO_RETRY)
    types_ = [detail["@type"] for detail in caught.value.details]
    assert "type.googleapis.com/google.rpc.QuotaFailure" in types_ and "type.googleapis.com/google.rpc.RetryInfo" in types_


def test_google_genai_generates_streams_counts_embeds_and_lists(genai_client):
    response = genai_client.models.generate_content(
        model=MODEL, contents="hi", config=types.GenerateContentConfig(temperature=0, max_output_tokens=3))
    assert response.text == "Emulated gemini-2.5-flash answer"
    assert response.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    stream = list(genai_client.models.generate_content_stream(model=MODEL, contents="hi"))
    assert len(stream) > 1 and stream[-1].usage_metadata.total_token_count > 0
    assert genai_client.models.count_tokens(model=MODEL, contents="hello world").total_tokens > 0
    embedded = genai_client.models.embed_content(model="text-embedding-004", contents=["a", "b"])
    assert [len(e.values) for e in embedded.embeddings] == [768, 768]
    assert any(m.name == "models/gemini-2.5-flash" for m in genai_client.models.list())


@pytest.mark.parametrize("status", [429, 503, 404])
def test_google_genai_raises_by_status(genai_client, emulator, status):
    emulator.fault(status=status)
    with pytest.raises(genai_errors.APIError) as caught:
        genai_client.models.generate_content(model=MODEL, contents="hi")
    assert caught.value.code == status


def test_keys_are_checked_like_google(emulator):
    url = f"{emulator.url}/v1beta/models/{MODEL}:generateContent"
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    assert requests.post(url, json=body, timeout=5).status_code == 403
    invalid = requests.post(url, json=body, params={"key": "wrong"}, timeout=5)
    assert invalid.status_code == 400
    assert invalid.json()["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    for auth in ({"x-goog-api-key": KEYS[0]}, {"Authorization": f"Bearer {KEYS[1]}"}):
        assert requests.post(url, json=body, headers=auth, timeout=5).status_code == 200
    assert requests.post(f"{emulator.url}/v1/models/{MODEL}:generateContent", json=body,
                         params={"key": KEYS[2]}, timeout=5).status_code == 200


def test_stream_formats_and_errors_inside_a_json_array(emulator):
    url = f"{emulator.url}/v1beta/models/{MODEL}:streamGenerateContent"
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    sse = requests.post(url, json=body, params={"alt": "sse", "key": KEYS[0]}, timeout=5).text
    events = [json.loads(line[6:]) for line in sse.split("\r\n\r\n") if line.startswith("data: ")]
    assert len(events) > 1 and events[-1]["candidates"][0]["finishReason"] == "STOP"
    assert all("usageMetadata" in event for event in events)
    array = requests.post(url, json=body, params={"key": KEYS[0]}, timeout=5).text
    assert array.startswith("[") and array.endswith("]") and "\n,\r\n" in array
    assert len(json.loads(array)) == len(events)
    emulator.fault(status=503)
    failed = requests.post(url, json=body, params={"key": KEYS[0]}, timeout=5)
    assert failed.status_code == 503 and failed.json()[0]["error"]["status"] == "UNAVAILABLE"


def test_integer_enums_are_accepted_in_requests(emulator):
    body = {"contents": [{"parts": [{"text": "hi"}]}],
            "safetySettings": [{"category": 7, "threshold": 3}, {"category": "HARM_CATEGORY_HATE_SPEECH",
                                                                  "threshold": "BLOCK_NONE"}]}
    response = requests.post(f"{emulator.url}/v1beta/models/{MODEL}:generateContent", json=body,
                             params={"key": KEYS[0], "$alt": "json;enum-encoding=int"}, timeout=5)
    assert response.status_code == 200
    assert response.json()["candidates"][0]["finishReason"] == 1


def test_latency_jitter_spreads_answers_around_the_latency():
    from proxy.emulator.state import EmulatorState

    state = EmulatorState()
    state.configure({"latency_ms": 50, "latency_jitter_ms": 25})
    drawn = [state.latency_for(MODEL) for _ in range(200)]
    assert all(0.025 <= seconds <= 0.075 for seconds in drawn)
    assert len(set(drawn)) > 100  # spread, not one value
    state.configure({"latency_seed": 7})
    first = [state.latency_for(MODEL) for _ in range(10)]
    state.configure({"latency_seed": 7})
    assert [state.latency_for(MODEL) for _ in range(10)] == first  # a seed replays its sequence
    state.configure({"latency_jitter_ms": 0})
    assert state.latency_for(MODEL) == 0.05

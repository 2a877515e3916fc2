"""The seams proxy.upstream.sdk_seams cuts into the SDK's REST transport: still where they were, and each
step builds the same HTTP request, and reads the same answer, as the SDK's own."""
import inspect
import json
from importlib import metadata

import pytest
import requests
from google.ai.generativelanguage_v1beta.services.generative_service.transports import rest
from google.api_core.gapic_v1 import method as gapic_method

from proxy.upstream import gemini_sdk, sdk_answers, sdk_seams
from proxy.upstream.messages import GenerationRequest

protos = gemini_sdk.protos
ANSWER = {"candidates": [{"content": {"parts": [{"text": "Hi"}], "role": "model"}, "finishReason": "STOP"}],
          "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 1, "totalTokenCount": 3},
          "modelVersion": "gemini-2.5-flash"}


@pytest.mark.parametrize("package", sorted(sdk_seams.SDK_VERSIONS))
def test_the_versions_the_seams_were_read_against(package):
    # Another version: read its transport again (rest.py, rest_base.py, api_core's gapic_v1/method.py and
    # path_template.py, protobuf's json_format.py), then move these pins and the seams together.
    assert metadata.version(package) == sdk_seams.SDK_VERSIONS[package]


@pytest.mark.parametrize("stub", [rest.GenerativeServiceRestTransport._GenerateContent,
                                  rest.GenerativeServiceRestTransport._CountTokens])
def test_the_transport_still_calls_each_seam(stub):
    source = inspect.getsource(stub.__call__)
    for step in ("_get_transcoded_request(", "_get_request_body_json(", "_get_query_params_json(",
                 "json_format.Parse(response.content, pb_resp, ignore_unknown_fields=True)"):
        assert step in source
    assert "isinstance(timeout, (int, float))" in inspect.getsource(gapic_method._GapicCallable.__call__)


def test_every_seam_is_in_place():
    for method in sdk_seams.METHODS:
        assert isinstance(method.__dict__["_get_transcoded_request"], sdk_seams._Transcoder)
        assert isinstance(method.__dict__["_get_query_params_json"], sdk_seams._QueryParams)
        assert method._get_request_body_json is sdk_seams._compact_body
    assert isinstance(rest.json_format, sdk_answers.JsonFormat)


class _Recorder:
    """The client's session: records what the transport sends, and answers it."""

    def __init__(self, answer):
        self.sent, self.answer = [], answer

    def request(self, method, url, **kwargs):
        self.sent.append((method, url, kwargs["params"], kwargs["headers"], json.loads(kwargs["data"]),
                          kwargs["timeout"]))
        response = requests.Response()
        response.status_code, response._content = 200, json.dumps(self.answer).encode()
        response.headers["Content-Type"] = "application/json"
        return response


def _calls(original):
    """Two generateContent and one countTokens calls, through the seams or (original) the SDK's own steps."""
    saved = {}
    if original:
        for (owner, name), step in sdk_seams.ORIGINALS.items():
            saved[owner, name] = owner.__dict__[name] if name in owner.__dict__ else getattr(owner, name)
            setattr(owner, name, step)
    try:
        client = gemini_sdk.GeminiSdk("http://gemini.invalid")._build("test-key-0001")
        recorder = _Recorder(ANSWER)
        client._transport._session.request = recorder.request
        request = GenerationRequest(prompt="Hello", model="gemini-2.5-flash", temperature=0.5, max_output_tokens=9,
                                    stop_sequences=("END",), system_instruction="Be brief.")
        timeout = 12.5 if original else sdk_seams.AttemptTimeout(12.5)
        answers = [type(answer).pb(answer).SerializeToString(deterministic=True) for answer in (
            client.generate_content(request=gemini_sdk._generate_request(model, request), retry=None, timeout=timeout)
            for model in ("gemini-2.5-flash", "gemini-2.5-flash"))]
        counted = client.count_tokens(protos.CountTokensRequest(model="models/gemini-2.5-flash", contents=[
            {"role": "user", "parts": [{"text": "Hello"}]}]), retry=None, timeout=timeout)
        return recorder.sent, answers, type(counted).pb(counted).SerializeToString(deterministic=True)
    finally:
        for (owner, name), step in saved.items():
            setattr(owner, name, step)


def test_the_same_requests_and_answers_as_the_sdk_s_own_steps():
    ours, theirs = _calls(original=False), _calls(original=True)
    assert ours == theirs
    sent = ours[0]
    assert sent[0][1] == "http://gemini.invalid/v1beta/models/gemini-2.5-flash:generateContent"
    assert sent[0][2] == [("$alt", "json;enum-encoding=int")] and sent[0][5] == 12.5
    assert "model" not in sent[0][4] and sent[0][4]["contents"][0]["parts"][0]["text"] == "Hello"


def test_a_model_no_template_takes_is_refused_every_time():
    transcoder = sdk_seams._BASE._BaseGenerateContent._get_transcoded_request
    http_options = sdk_seams._BASE._BaseGenerateContent._get_http_options()
    for _ in range(2):
        with pytest.raises(ValueError):
            transcoder(http_options, protos.GenerateContentRequest(model="gemini-2.5-flash"))
    assert "gemini-2.5-flash" not in transcoder.routes
    tuned = transcoder(http_options, protos.GenerateContentRequest(model="tunedModels/mine"))
    assert tuned["uri"] == "/v1beta/tunedModels/mine:generateContent"
    again = transcoder(http_options, protos.GenerateContentRequest(model="tunedModels/mine"))
    assert again == tuned and again["body"] is not tuned["body"]


def test_the_attempt_timeout_reaches_the_call_as_the_number_would():
    seen = []
    wrapped = gapic_method._GapicCallable(lambda *args, **kwargs: seen.append(kwargs["timeout"]), None, None, None)
    wrapped(retry=None, timeout=sdk_seams.AttemptTimeout(3.25))
    wrapped(retry=None, timeout=3.25)
    assert seen == [3.25, 3.25]

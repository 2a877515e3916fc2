"""A misbehaving upstream's JSON against /gemini/generate, whose answers are now read by one protobuf
constructor (upstream.sdk_answers) instead of json_format: the same status and error code as before."""
import json

import pytest

from tests.test_hostile_cpu_http1 import Upstream, ok

JSON = b"Content-Type: application/json\r\n"
BODIES = {
    "candidates-not-a-list": {"candidates": "x"},
    "parts-not-a-list": {"candidates": [{"content": {"parts": {"text": "x"}}}]},
    "text-a-number": {"candidates": [{"content": {"parts": [{"text": 5}], "role": "model"}}]},
    "unknown-fields": {"candidates": [{"content": {"parts": [{"text": "x", "zz": 1}], "role": "model"}}], "q": 1},
    "tokens-a-string": {"candidates": [{"content": {"parts": [{"text": "x"}]}}],
                        "usageMetadata": {"promptTokenCount": "12"}},
    "tokens-negative": {"candidates": [{"content": {"parts": [{"text": "x"}]}}],
                        "usageMetadata": {"promptTokenCount": -1}},
    "tokens-huge": {"candidates": [{"content": {"parts": [{"text": "x"}]}}],
                    "usageMetadata": {"promptTokenCount": 10**30}},
    "tokens-float": {"candidates": [{"content": {"parts": [{"text": "x"}]}}],
                     "usageMetadata": {"promptTokenCount": 1.5}},
    "finish-unknown": {"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": "NOPE"}]},
    "finish-a-number": {"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": 99}]},
    "null-everything": {"candidates": None, "usageMetadata": None},
    "empty": {},
    "a-list": [],
    "nested-deep": {"candidates": [{"content": {"parts": [{"text": "x"}]}}], "x": json.loads("[" * 900 + "]" * 900)},
    "lone-surrogate": "RAW:{\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"\\ud800\"}]}}]}",
    "not-json": "RAW:{not json",
    "nan": "RAW:{\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"x\"}]}, \"avgLogprobs\": NaN}]}",
}

# What main (urllib3, json_format) answered for each: the new path must answer the same.
MAIN = {
    "candidates-not-a-list": (502, 'UPSTREAM_ERROR'),
    "parts-not-a-list": (502, 'UPSTREAM_ERROR'),
    "text-a-number": (502, 'UPSTREAM_ERROR'),
    "unknown-fields": (200, None),
    "tokens-a-string": (200, None),
    "tokens-negative": (200, None),
    "tokens-huge": (502, 'UPSTREAM_ERROR'),
    "tokens-float": (502, 'UPSTREAM_ERROR'),
    "finish-unknown": (200, None),
    "finish-a-number": (200, None),
    "null-everything": (422, 'PROMPT_BLOCKED'),
    "empty": (422, 'PROMPT_BLOCKED'),
    "a-list": (422, 'PROMPT_BLOCKED'),
    "nested-deep": (200, None),
    "lone-surrogate": (502, 'UPSTREAM_ERROR'),
    "not-json": (502, 'UPSTREAM_ERROR'),
    "nan": (502, 'UPSTREAM_ERROR'),
}


def _bytes(body):
    return body[4:].encode() if isinstance(body, str) and body.startswith("RAW:") else json.dumps(body).encode()


@pytest.fixture
def generate(make_app):
    servers = []

    def call(body):
        servers.append(Upstream([(ok(_bytes(body), JSON), True)] * 6))
        app = make_app(GEMINI_BASE_URL=servers[-1].url)
        answer = app.test_client().post("/gemini/generate", json={"prompt": {"text": "hi"}})
        return answer.status_code, (answer.get_json(silent=True) or {}).get("error", {}).get("code")

    yield call
    for server in servers:
        server.close()


@pytest.mark.parametrize("name", BODIES)
def test_an_odd_answer_gets_the_status_main_gave(generate, name):
    assert generate(BODIES[name]) == MAIN[name]

"""The Live API's wire, read once: endpoints, the setup message, client frames and ephemeral tokens, against
hostile input (Hypothesis), and the server's messages read for usage without ever failing the relay."""
import json

import pytest
from hypothesis import given, strategies as st

from proxy.wire import credentials, live, query as queries

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=20)


@pytest.mark.parametrize("path, version, constrained", [
    ("/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent", "v1beta", False),
    ("/ws/google.ai.generativelanguage.v1.GenerativeService.BidiGenerateContent", "v1", False),
    ("/ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContentConstrained", "v1alpha", True),
])
def test_the_live_endpoints_are_known_exactly(path, version, constrained):
    assert live.endpoint(path) == live.Endpoint(version, constrained)
    assert live.endpoint(path).path == path


@pytest.mark.parametrize("path", [
    "/ws/google.ai.generativelanguage.v2.GenerativeService.BidiGenerateContent",
    "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContentX",
    "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent/..",
    "/ws/google%2Eai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent",
    "/ws/", "",
])
def test_anything_else_is_no_live_endpoint(path):
    assert live.endpoint(path) is None


def test_a_setup_is_read_and_sent_on_as_parsed():
    setup = live.read_setup('{"setup": {"model": "models/gemini-live-2.5-flash-preview", "generationConfig": {}}}')
    assert setup.model == "gemini-live-2.5-flash-preview"
    assert json.loads(setup.encoded()) == {"setup": {"model": "models/gemini-live-2.5-flash-preview",
                                                     "generationConfig": {}}}


@pytest.mark.parametrize("frame", [
    '{"setup": {"model": "models/x"}, "clientContent": {}}',  # more than a setup
    '{"setup": {"model": "models/../files/x"}}',
    '{"setup": {"model": 7}}',
    '{"setup": {"model": "models/a", "model": "models/b"}}',  # parsers disagree on which wins
    '{"setup": {"model": "models/a", "temperature": NaN}}',
    '[' * 200 + ']' * 200,
    b"\xff\xfe",
    "{}",
])
def test_a_setup_the_live_api_does_not_take_is_refused(frame):
    with pytest.raises(live.BadFrame):
        live.read_setup(frame)


@given(JSON)
def test_any_json_as_a_setup_is_read_or_refused(value):
    try:
        setup = live.read_setup(json.dumps(value))
    except live.BadFrame:
        return
    assert json.loads(setup.encoded()) == value


@given(JSON)
def test_any_json_as_a_client_frame_is_read_or_refused(value):
    try:
        frame = live.read_client_frame(json.dumps(value))
    except live.BadFrame:
        return
    assert json.loads(frame.encoded) == value and frame.kind in ("clientContent", "realtimeInput", "toolResponse")


def test_audio_is_counted_and_never_stored():
    frame = live.read_client_frame(json.dumps({"realtimeInput": {"audio": {"data": "AAECAwQ=", "mimeType": "audio/pcm"}}}))
    assert frame.media_bytes == 5 and "AAECAwQ=" not in frame.stored and "AAECAwQ=" in frame.encoded


@given(st.binary(max_size=64) | st.text(max_size=64) | JSON.map(json.dumps))
def test_any_server_message_is_read_without_failing(frame):
    news = live.read_server_frame(frame)
    assert isinstance(news.stored, str)


def test_usage_is_summed_over_turns_and_junk_counts_nothing():
    usage = live.SessionUsage()
    usage.add({"promptTokenCount": 10, "responseTokenCount": 5, "totalTokenCount": 15})
    usage.add({"promptTokenCount": -3, "responseTokenCount": "nine", "thoughtsTokenCount": True})
    assert (usage.prompt, usage.response, usage.thoughts, usage.total) == (10, 5, 0, 15)


def read(headers=None, query="", path="/ws/google.ai.generativelanguage.v1alpha.GenerativeService."
                                      "BidiGenerateContentConstrained"):
    return live.read_request(path, query, headers or {})


def test_an_ephemeral_token_is_read_from_either_slot_and_python_genais_copy_of_it():
    assert read({"Authorization": "Token auth_tokens/abc"}).token == ("token", "auth_tokens/abc")
    assert read(query="access_token=auth_tokens/abc").token == ("access_token", "auth_tokens/abc")
    both = read({"Authorization": "Token auth_tokens/abc", "x-goog-api-key": "auth_tokens/abc"})
    assert both.token == ("token", "auth_tokens/abc") and both.presented.gemini is None


@pytest.mark.parametrize("headers, query", [
    ({"Authorization": "Token auth_tokens/abc", "x-goog-api-key": "AIza-real-key"}, ""),
    ({"Authorization": "Token auth_tokens/abc"}, "access_token=auth_tokens/def"),
    ({"Authorization": "Token auth_tokens/../x"}, ""),
    ({"Authorization": "Token abc"}, ""),
    ({}, "key=a&key=b"),
    ({}, "access_token=auth_tokens/a&access_token=auth_tokens/b"),
    ({}, "Access_Token=auth_tokens/a"),
])
def test_tokens_and_keys_that_leave_it_open_which_is_meant_are_refused(headers, query):
    with pytest.raises((credentials.BadCredentials, queries.BadQuery)):
        read(headers, query)


def test_a_token_opens_only_the_constrained_endpoint():
    with pytest.raises(credentials.BadCredentials):
        read({"Authorization": "Token auth_tokens/abc"},
             path="/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent")


@pytest.mark.parametrize("path, status, words", [
    ("/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent", 400, "WebSocket"),
    ("/ws/google.ai.generativelanguage.v1beta.GenerativeService.Other", 404, "Live API"),
    ("/ws/", 404, "Live API"),
])
def test_what_is_not_a_live_upgrade_gets_the_proxys_error(client, path, status, words):
    answer = client.get(path)
    assert answer.status_code == status and words in answer.get_json()["error"]["message"]

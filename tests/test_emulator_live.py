"""The emulator's Live API: google-genai's own Live client, and raw WebSocket clients, straight at it. The
SDK always dials wss:// (it rewrites the base URL's scheme), so its tests reach the emulator over TLS."""
import asyncio
import base64
import json
import math
import socket
import ssl
import threading
import time
import warnings

import pytest
import requests
import simple_websocket
import trustme
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from werkzeug.serving import WSGIRequestHandler, make_server

from proxy.emulator.app import create_emulator
from tests import processes
from tests.conftest import KEYS

MODEL = "gemini-3.1-flash-live-preview"
AUDIO_MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"
PATH = "/ws/google.ai.generativelanguage.{}.GenerativeService.{}"


class _Quiet(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_request(self, *args, **kwargs):
        pass


class LiveEmulator:
    """The emulator's app on a loopback port of a thread, served over TLS (the SDK's wss://) or plain."""

    def __init__(self, authority=None):
        self.app = create_emulator(valid_keys=KEYS)
        context = None
        if authority is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            authority.issue_cert("127.0.0.1").configure_cert(context)
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True, request_handler=_Quiet,
                                  ssl_context=context)
        self.server.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        scheme = "https" if context else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_port}"
        self.ws_url = self.url.replace("http", "ws", 1)
        self.control = self.app.test_client()
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def configure(self, **settings):
        assert self.control.post("/_emulator/config", json=settings).status_code == 200

    def sessions(self):
        return [r for r in self.control.get("/_emulator/requests").get_json() if r["action"] == "live.session"]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture(scope="module")
def authority():
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_live(authority):
    server = LiveEmulator(authority)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def plain_live():
    server = LiveEmulator()
    yield server
    server.stop()


@pytest.fixture
def live(tls_live):
    tls_live.control.post("/_emulator/reset")
    return tls_live


@pytest.fixture
def raw(plain_live):
    plain_live.control.post("/_emulator/reset")
    return plain_live


def sdk_client(live, authority, api_key=KEYS[0], api_version=None):
    trusted = ssl.create_default_context()
    authority.configure_trust(trusted)
    return genai.Client(api_key=api_key, http_options=types.HttpOptions(
        base_url=live.url, api_version=api_version, client_args={"verify": trusted},
        async_client_args={"ssl": trusted}))


async def one_turn(session):
    """Every message of the model's next turn, up to turnComplete."""
    return [message async for message in session.receive()]


def run(coroutine):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the SDK warns that Live and ephemeral tokens are experimental
        return asyncio.run(asyncio.wait_for(coroutine, 20))


def test_the_sdk_holds_a_text_session_of_two_turns(live, authority):
    async def talk():
        config = types.LiveConnectConfig(response_modalities=["TEXT"], system_instruction="Be brief.")
        async with sdk_client(live, authority).aio.live.connect(model=MODEL, config=config) as session:
            await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(text="hello")]))
            first = await one_turn(session)
            await session.send_realtime_input(text="and again")
            return first, await one_turn(session)

    first, second = run(talk())
    text = "".join(m.text for m in first if m.text)
    assert text.startswith(f"Emulated {MODEL} answer to: hello")
    assert first[-1].server_content.turn_complete is True and len(first) > 3
    usage = first[-1].usage_metadata
    assert usage.response_token_count == len(text.split()) and usage.prompt_token_count > 0
    assert usage.total_token_count == usage.prompt_token_count + usage.response_token_count
    assert usage.response_tokens_details[0].modality.name == "TEXT"
    assert "".join(m.text for m in second if m.text).startswith(f"Emulated {MODEL} answer to: and again")
    # Live counts the whole context each turn: the second turn's prompt holds the first's.
    assert second[-1].usage_metadata.prompt_token_count > usage.total_token_count
    [session] = live.sessions()
    assert session["key"] == KEYS[0] and session["model"] == MODEL and session["headers"]["x-goog-api-key"] == KEYS[0]
    assert session["body"]["systemInstruction"]["parts"][0]["text"] == "Be brief."
    assert "client_content" in session["messages_in"][1] and session["messages_out"][0] == {"setupComplete": {}}


def test_a_declared_function_named_in_the_turn_is_called_and_its_response_continues_the_turn(live, authority):
    weather = types.FunctionDeclaration(name="get_weather", description="The weather in a city",
                                        parameters=types.Schema(type="OBJECT", properties={
                                            "city": types.Schema(type="STRING")}))

    async def talk():
        config = types.LiveConnectConfig(response_modalities=["TEXT"],
                                         tools=[types.Tool(function_declarations=[weather])])
        async with sdk_client(live, authority).aio.live.connect(model=MODEL, config=config) as session:
            await session.send_client_content(turns=types.Content(
                role="user", parts=[types.Part(text="call get_weather for Paris")]))
            async for message in session.receive():
                if message.tool_call:
                    call = message.tool_call.function_calls[0]
                    break
            await session.send_tool_response(function_responses=[types.FunctionResponse(
                id=call.id, name=call.name, response={"sky": "clear"})])
            return call, await one_turn(session)

    call, turn = run(talk())
    assert call.name == "get_weather" and call.args == {"city": "emulated"} and call.id
    assert '{"sky": "clear"}' in "".join(m.text for m in turn if m.text)
    assert turn[-1].server_content.turn_complete is True


def test_audio_in_and_audio_out_with_transcriptions(live, authority):
    chunk = bytes(16000 * 2 // 2)  # half a second of 16 kHz 16-bit silence

    async def talk():
        config = types.LiveConnectConfig(response_modalities=["AUDIO"],
                                         input_audio_transcription=types.AudioTranscriptionConfig(),
                                         output_audio_transcription=types.AudioTranscriptionConfig())
        async with sdk_client(live, authority).aio.live.connect(model=AUDIO_MODEL, config=config) as session:
            await session.send_realtime_input(audio=types.Blob(data=chunk, mime_type="audio/pcm;rate=16000"))
            await session.send_realtime_input(audio_stream_end=True)
            return await one_turn(session)

    turn = run(talk())
    heard = [m.server_content.input_transcription.text for m in turn
             if m.server_content and m.server_content.input_transcription]
    assert heard == ["Emulated transcript of 0.50 seconds of audio."]
    audio = b"".join(m.data for m in turn if m.data)
    assert len(audio) > 24000 and len(audio) % 2 == 0  # 16-bit PCM at 24 kHz, a tenth of a second a word
    parts = [p for m in turn if m.server_content and m.server_content.model_turn
             for p in m.server_content.model_turn.parts]
    assert {p.inline_data.mime_type for p in parts} == {"audio/pcm;rate=24000"}
    said = "".join(m.server_content.output_transcription.text for m in turn
                   if m.server_content and m.server_content.output_transcription)
    assert said.startswith(f"Emulated {AUDIO_MODEL} answer to: 0.50 seconds of audio")
    usage = turn[-1].usage_metadata
    assert {d.modality.name: d.token_count for d in usage.prompt_tokens_details} == {"AUDIO": 13}
    assert usage.response_tokens_details[0].modality.name == "AUDIO"
    assert usage.response_token_count == math.ceil(len(said.split()) * 2.5)  # 25 a second, a word a tenth


def test_a_refused_key_and_an_unknown_model_are_apierrors_with_googles_close_codes(live, authority):
    async def connect(client, model=MODEL):
        async with client.aio.live.connect(model=model, config={"response_modalities": ["TEXT"]}):
            pass

    with pytest.raises(genai_errors.APIError) as refused:
        run(connect(sdk_client(live, authority, api_key="not-a-key")))
    assert refused.value.code == 1007 and refused.value.details == "API key not valid. Please pass a valid API key."
    with pytest.raises(genai_errors.APIError) as unknown:
        run(connect(sdk_client(live, authority), model="gemini-2.5-flash"))
    assert unknown.value.code == 1008
    assert unknown.value.details.startswith("models/gemini-2.5-flash is not found for API version v1, "
                                            "or is not supported for bidiGenerateContent.")
    live.configure(live_refuse_keys=[KEYS[1]])
    with pytest.raises(genai_errors.APIError) as faulted:
        run(connect(sdk_client(live, authority, api_key=KEYS[1])))
    assert faulted.value.code == 1007
    assert [s["close"]["code"] for s in live.sessions()] == [1007, 1008, 1007]


def test_a_token_minted_by_a_key_opens_sessions_until_its_uses_run_out(live, authority):
    minting = sdk_client(live, authority, api_key=KEYS[2], api_version="v1alpha")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        token = minting.auth_tokens.create(config=types.CreateAuthTokenConfig(
            uses=2, live_connect_constraints=types.LiveConnectConstraints(
                model=MODEL, config=types.LiveConnectConfig(response_modalities=["TEXT"],
                                                            system_instruction="Locked in."))))
    assert token.name.startswith("auth_tokens/")
    holder = sdk_client(live, authority, api_key=token.name, api_version="v1alpha")

    async def talk():
        # The holder asks another model and instruction: the token's locked setup wins.
        config = {"response_modalities": ["TEXT"], "system_instruction": "Anything goes."}
        async with holder.aio.live.connect(model="gemini-live-2.5-flash-preview", config=config) as session:
            await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(text="hi")]))
            return "".join(m.text for m in await one_turn(session) if m.text)

    assert run(talk()).startswith(f"Emulated {MODEL} answer to: hi")
    run(talk())
    with pytest.raises(genai_errors.APIError) as spent:
        run(talk())
    assert spent.value.code == 1008
    sessions = live.sessions()
    assert [s["key"] for s in sessions] == [KEYS[2]] * 3 and {s["token"] for s in sessions} == {token.name}
    assert all(s["constrained"] and s["version"] == "v1alpha" for s in sessions)
    assert sessions[0]["body"]["systemInstruction"]["parts"][0]["text"] == "Locked in."
    assert sessions[0]["headers"]["authorization"] == f"Token {token.name}"


def raw_session(raw, query="", headers=None, model=MODEL, version="v1beta", method="BidiGenerateContent",
                setup=None):
    ws = simple_websocket.Client.connect(f"{raw.ws_url}{PATH.format(version, method)}{query}", headers=headers)
    ws.send(json.dumps({"setup": {"model": f"models/{model}", **(setup or {})}}))
    return ws


def receive(ws):
    message = ws.receive(timeout=5)
    assert isinstance(message, bytes)  # binary frames of JSON, as Google sends
    return json.loads(message)


def turn_of(ws):
    messages = []
    while not messages or "turnComplete" not in messages[-1].get("serverContent", {}):
        messages.append(receive(ws))
    return messages


def test_both_key_forms_reach_the_session_and_the_log(raw):
    for ws in (raw_session(raw, query=f"?key={KEYS[0]}"), raw_session(raw, headers={"x-goog-api-key": KEYS[1]},
                                                                       version="v1alpha")):
        assert receive(ws) == {"setupComplete": {}}
        ws.send(json.dumps({"realtimeInput": {"text": "hello"}}))
        assert turn_of(ws)[-1]["usageMetadata"]["responseTokenCount"] > 0
        ws.close()
    # Both sockets open before either is served: the emulator may log the second first.
    assert sorted((s["key"], s["version"]) for s in raw.sessions()) == sorted([(KEYS[0], "v1beta"),
                                                                              (KEYS[1], "v1alpha")])


def test_a_missing_key_is_closed_1008_with_googles_reason_cut_to_123_bytes(raw):
    ws = raw_session(raw)
    with pytest.raises(simple_websocket.ConnectionClosed):
        ws.receive(timeout=5)
    assert ws.close_reason == 1008 and ws.close_message.startswith("Method doesn't allow unregistered callers")
    assert len(ws.close_message.encode()) == 123


def test_an_unknown_message_is_closed_1007(raw):
    ws = raw_session(raw, query=f"?key={KEYS[0]}")
    receive(ws)
    ws.send(json.dumps({"clientContnt": {}}))
    with pytest.raises(simple_websocket.ConnectionClosed):
        ws.receive(timeout=5)
    assert ws.close_reason == 1007 and 'Unknown name "clientContnt"' in ws.close_message


def test_go_away_and_resumption_handles_resume_the_context(raw):
    ws = raw_session(raw, query=f"?key={KEYS[0]}", setup={"sessionResumption": {}})
    assert receive(ws) == {"setupComplete": {}}
    first_handle = receive(ws)["sessionResumptionUpdate"]
    assert first_handle["resumable"] is True and first_handle["newHandle"]
    ws.send(json.dumps({"clientContent": {"turns": [{"role": "user", "parts": [{"text": "remember [[go-away]]"}]}],
                                          "turnComplete": True}}))
    usage = turn_of(ws)[-1]["usageMetadata"]
    handle = receive(ws)["sessionResumptionUpdate"]["newHandle"]
    assert receive(ws) == {"goAway": {"timeLeft": "10s"}}
    ws.close()
    again = raw_session(raw, query=f"?key={KEYS[0]}", setup={"sessionResumption": {"handle": handle}})
    assert receive(again) == {"setupComplete": {}}
    receive(again)
    again.send(json.dumps({"realtimeInput": {"text": "more"}}))
    assert turn_of(again)[-1]["usageMetadata"]["promptTokenCount"] > usage["totalTokenCount"]
    again.close()
    # Another project's key cannot take the handle over.
    stranger = raw_session(raw, query=f"?key={KEYS[1]}", setup={"sessionResumption": {"handle": handle}})
    with pytest.raises(simple_websocket.ConnectionClosed):
        stranger.receive(timeout=5)
    assert stranger.close_reason == 1008


def test_latency_and_a_socket_dropped_mid_turn(raw):
    raw.configure(live_latency_ms=300, live_drop_after_messages=2)
    ws = raw_session(raw, query=f"?key={KEYS[0]}")
    receive(ws)
    started = time.monotonic()
    ws.send(json.dumps({"realtimeInput": {"text": "hello"}}))
    got = [receive(ws), receive(ws)]
    assert time.monotonic() - started >= 0.3 and all("serverContent" in m for m in got)
    with pytest.raises(simple_websocket.ConnectionClosed):
        ws.receive(timeout=5)
    assert ws.close_reason != 1000
    assert raw.sessions()[-1]["close"]["code"] == 1006
    assert raw.control.get("/_emulator/config").get_json()["live_drop_after_messages"] is None


def test_a_token_on_the_query_spends_its_use_and_a_plain_endpoint_refuses_it(raw):
    minted = raw.control.post("/v1alpha/auth_tokens", headers={"x-goog-api-key": KEYS[0]}, json={"uses": 1})
    name = minted.get_json()["name"]
    assert raw.control.post("/v1alpha/auth_tokens", json={}).status_code == 403
    plain = raw_session(raw, query=f"?key={name}")
    with pytest.raises(simple_websocket.ConnectionClosed):
        plain.receive(timeout=5)
    assert plain.close_reason == 1007
    ws = raw_session(raw, query=f"?access_token={name}", version="v1alpha", method="BidiGenerateContentConstrained")
    assert receive(ws) == {"setupComplete": {}}
    ws.close()
    spent = raw_session(raw, query=f"?access_token={name}", version="v1alpha", method="BidiGenerateContentConstrained")
    with pytest.raises(simple_websocket.ConnectionClosed):
        spent.receive(timeout=5)
    assert spent.close_reason == 1008
    assert raw.sessions()[1]["key"] == KEYS[0]


@pytest.fixture(scope="module")
def gevent_live(authority, tmp_path_factory):
    """`python -m proxy.emulator` itself (gevent.pywsgi) over HTTPS, as the proxy's tests will meet it."""
    folder = tmp_path_factory.mktemp("live-tls")
    authority.cert_pem.write_to_path(str(folder / "ca.pem"))
    authority.issue_cert("localhost", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
        str(folder / "server.pem"))
    process = processes.start_emulator(str(folder), KEYS, certfile=str(folder / "server.pem"),
                                       cafile=str(folder / "ca.pem"))
    process.sessions = lambda: [r for r in requests.get(f"{process.url}/_emulator/requests", timeout=5,
                                                        verify=str(folder / "ca.pem")).json()
                                if r["action"] == "live.session"]
    yield process
    process.stop()


@pytest.mark.e2e
def test_the_gevent_emulator_serves_a_session_a_refusal_and_a_token_over_tls(gevent_live, authority):
    async def talk(client, model=MODEL):
        async with client.aio.live.connect(model=model, config={"response_modalities": ["TEXT"]}) as session:
            await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(text="hi")]))
            return "".join(m.text for m in await one_turn(session) if m.text)

    assert run(talk(sdk_client(gevent_live, authority))).startswith(f"Emulated {MODEL} answer to: hi")
    with pytest.raises(genai_errors.APIError) as refused:
        run(talk(sdk_client(gevent_live, authority, api_key="not-a-key")))
    assert refused.value.code == 1007
    minting = sdk_client(gevent_live, authority, api_key=KEYS[1], api_version="v1alpha")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        token = minting.auth_tokens.create(config={"uses": 1})
    holder = sdk_client(gevent_live, authority, api_key=token.name, api_version="v1alpha")
    assert run(talk(holder)).startswith(f"Emulated {MODEL} answer to: hi")
    with pytest.raises(genai_errors.APIError) as spent:
        run(talk(holder))
    assert spent.value.code == 1008
    # The SDK closes its sessions with 1000; the emulator closes the refused ones.
    assert [(s["key"], s["close"]["code"]) for s in gevent_live.sessions()] == [
        (KEYS[0], 1000), ("not-a-key", 1007), (KEYS[1], 1000), (KEYS[1], 1008)]


def closed(ws):
    """The close code and reason the emulator ended a session with."""
    with pytest.raises(simple_websocket.ConnectionClosed):
        while True:
            assert ws.receive(timeout=5) is not None
    return ws.close_reason, ws.close_message


def test_a_token_past_its_new_session_time_is_refused_and_a_field_mask_locks_only_its_fields(raw):
    def mint(**body):
        return raw.control.post("/v1alpha/auth_tokens", headers={"x-goog-api-key": KEYS[0]},
                                json=body).get_json()["name"]

    late = mint(newSessionExpireTime="2020-01-01T00:00:00Z")
    ws = raw_session(raw, query=f"?access_token={late}", version="v1alpha", method="BidiGenerateContentConstrained")
    assert closed(ws)[0] == 1008
    masked = mint(uses=0, bidiGenerateContentSetup={"setup": {
        "model": f"models/{MODEL}", "generationConfig": {"temperature": 0.2, "maxOutputTokens": 3}}},
        fieldMask="model,generationConfig.temperature")
    setup = {"generationConfig": {"temperature": 1.5, "maxOutputTokens": 5}, "systemInstruction": "Mine."}
    ws = raw_session(raw, headers={"Authorization": f"Token {masked}"}, model="gemini-live-2.5-flash-preview",
                     version="v1alpha", method="BidiGenerateContentConstrained", setup=setup)
    assert receive(ws) == {"setupComplete": {}}
    ws.close()
    body = raw.sessions()[-1]["body"]
    assert body["model"] == f"models/{MODEL}" and body["systemInstruction"] == "Mine."
    assert body["generationConfig"] == {"temperature": 0.2, "maxOutputTokens": 5}


def test_realtime_input_while_a_tool_call_waits_is_closed_as_google_does(raw):
    tools = [{"functionDeclarations": [{"name": "lookup"}]}]
    ws = raw_session(raw, query=f"?key={KEYS[0]}", setup={"tools": tools})
    receive(ws)
    ws.send(json.dumps({"realtimeInput": {"text": "please lookup"}}))
    assert receive(ws)["toolCall"]["functionCalls"][0]["name"] == "lookup"
    ws.send(json.dumps({"realtimeInput": {"text": "are you there?"}}))
    assert closed(ws) == (1008, "Operation is not implemented, or supported, or enabled.")

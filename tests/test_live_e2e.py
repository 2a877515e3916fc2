"""The Live API through the proxy, with real clients: google-genai's live client and a raw WebSocket client,
Gunicorn's gevent workers serving, the emulator's Live endpoint behind (which closes a session on a key it
does not take, as Google does), and one record per session in the database."""
import asyncio
import json
import signal
import ssl
import time
from zlib import decompress

import pytest
import requests
import simple_websocket
from google import genai
from google.genai import types

from proxy.upstream.keypool import fingerprint
from tests import processes
from tests.conftest import KEYS, private_authority, rows, wait_for

pytestmark = pytest.mark.e2e

LIVE_MODEL = "gemini-live-2.5-flash-preview"
CLIENT_A, CLIENT_B = "live-client-a-0123456789", "live-client-b-0123456789"
PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
SESSIONS = ("SELECT client_id, model_used, status_code, finish_reason, error_code, prompt_tokens, completion_tokens, "
            "total_tokens, attempt_count FROM request_log WHERE route LIKE '/ws/%' ORDER BY id")


def ws_url(server, path=PATH, query=""):
    return server.url.replace("http://", "ws://").replace("https://", "wss://") + path + (f"?{query}" if query else "")


def raw_session(server, headers=None, query="", model=LIVE_MODEL, path=PATH):
    """A raw WebSocket client's session, its setup answered."""
    ws = simple_websocket.Client.connect(ws_url(server, path, query), headers=headers or {})
    ws.send(json.dumps({"setup": {"model": f"models/{model}", "generationConfig": {"responseModalities": ["TEXT"]}}}))
    return ws, json.loads(ws.receive(timeout=30))


def turn(ws, text):
    """One text turn; the messages of the model's answer, up to turnComplete."""
    ws.send(json.dumps({"clientContent": {"turns": [{"role": "user", "parts": [{"text": text}]}],
                                          "turnComplete": True}}))
    messages = []
    while True:
        message = json.loads(ws.receive(timeout=30))
        messages.append(message)
        if (message.get("serverContent") or {}).get("turnComplete"):
            return messages


def closed(ws, timeout=30):
    """(code, reason) the server closed the socket with."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ws.receive(timeout=0.5)
        except simple_websocket.ConnectionClosed as close:
            return close.reason, close.message or ""
    pytest.fail("the session was not closed")


def live_sessions(emulator):
    return [r for r in emulator.requests() if r["action"] == "live.session"]


def sessions(server, count):
    wait_for(lambda: len(rows(server.database_url, SESSIONS)) >= count, message=f"{count} session records")
    return rows(server.database_url, SESSIONS)


@pytest.fixture
def server(gunicorn):
    return gunicorn(GEMINI_API_KEY=f"{KEYS[0]},{KEYS[1]}", API_KEYS=f"{CLIENT_A},{CLIENT_B}", WEB_CONCURRENCY=2)


@pytest.fixture
def authority(tmp_path):
    return private_authority(tmp_path, "127.0.0.1", "localhost")


@pytest.fixture
def front(server, authority, tmp_path):
    """The repo's nginx site terminating TLS in front of `server`: python-genai always dials wss://."""
    nginx = processes.start_nginx(str(tmp_path), int(server.url.rsplit(":", 1)[1]),
                                  tls=(str(authority / "server.pem"), str(authority / "server.pem")))
    nginx.ca = str(authority / "ca.pem")
    yield nginx
    nginx.stop()


def sdk(front, key, api_version="v1beta"):
    """google-genai, its base URL the TLS front, trusting the tests' private authority both ways."""
    context = ssl.create_default_context(cafile=front.ca)
    return genai.Client(api_key=key, http_options=types.HttpOptions(
        base_url=front.url, api_version=api_version, client_args={"verify": front.ca},
        async_client_args={"ssl": context}))


def test_text_turns_a_tool_call_and_audio_through_google_genais_live_client(server, front, emulator):
    weather = types.FunctionDeclaration(name="get_weather", description="The weather in a city",
                                        parameters={"type": "OBJECT", "properties": {"city": {"type": "STRING"}},
                                                    "required": ["city"]})

    async def talk():
        client = sdk(front, CLIENT_A)
        config = types.LiveConnectConfig(response_modalities=["TEXT"], tools=[types.Tool(function_declarations=[weather])])
        texts, calls = [], []
        async with client.aio.live.connect(model=LIVE_MODEL, config=config) as session:
            for question in ("Hello there", "How are you?"):
                await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(text=question)]),
                                                  turn_complete=True)
                answer = ""
                async for message in session.receive():
                    answer += message.text or ""
                texts.append(answer)
            await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(
                text="Call get_weather for Paris")]), turn_complete=True)
            async for message in session.receive():
                if message.tool_call:
                    calls.extend(message.tool_call.function_calls)
                    break
            await session.send_tool_response(function_responses=[types.FunctionResponse(
                id=calls[0].id, name=calls[0].name, response={"forecast": "sunny"})])
            answer = ""
            async for message in session.receive():
                answer += message.text or ""
            texts.append(answer)
        async with client.aio.live.connect(model=LIVE_MODEL, config=types.LiveConnectConfig(
                response_modalities=["AUDIO"])) as session:
            await session.send_realtime_input(audio=types.Blob(data=b"\x00\x01" * 8000, mime_type="audio/pcm;rate=16000"))
            await session.send_realtime_input(audio_stream_end=True)
            audio = b""
            async for message in session.receive():
                audio += message.data or b""
        return texts, calls, audio

    texts, calls, audio = asyncio.run(talk())
    assert "Hello there" in texts[0] and "How are you?" in texts[1]
    assert [call.name for call in calls] == ["get_weather"] and calls[0].args.get("city")
    assert "sunny" in texts[2]
    assert len(audio) > 0
    seen = live_sessions(emulator)
    assert len(seen) == 2 and {s["key"] for s in seen} <= {KEYS[0], KEYS[1]}  # a pool key, never the client's
    recorded = sessions(server, 2)
    client_id = recorded[0][0]
    assert client_id is not None and [r[0] for r in recorded] == [client_id, client_id]
    assert [(r[1], r[2], r[3]) for r in recorded] == [(LIVE_MODEL, 101, "client_close")] * 2
    assert all(r[7] and r[7] > 0 for r in recorded)  # the turns' usageMetadata summed
    costs = rows(server.database_url, "SELECT cost_usd, price_source FROM request_log WHERE route LIKE '/ws/%'")
    assert all(cost > 0 and source == "default:2026-12-03" for cost, source in costs)  # costed as recorded
    carried = sorted(rows(server.database_url, "SELECT turns, media_in_bytes, close_code, stream_format, key_source "
                                        "FROM exchanges WHERE action = 'BidiGenerateContent'"),
                     key=lambda row: row[1])  # by media: two workers' records come in either order
    assert carried[0] == (3, 0, 1000, "ws", "server")  # two answers, and the one after the tool call
    assert carried[1][:2] == (1, 16000)
    bodies = rows(server.database_url, "SELECT count(*) FROM exchange_bodies")
    assert bodies[0][0] >= 2


def test_a_clients_own_key_passes_as_it_came_in_either_slot(server, emulator):
    for headers, query in (({"X-API-KEY": CLIENT_A, "x-goog-api-key": KEYS[2]}, ""),
                           ({"X-API-KEY": CLIENT_A}, f"key={KEYS[2]}")):
        ws, first = raw_session(server, headers=headers, query=query)
        assert "setupComplete" in first
        assert turn(ws, "mine")[-1]["usageMetadata"]
        ws.close()
    seen = live_sessions(emulator)
    assert [s["key"] for s in seen] == [KEYS[2], KEYS[2]]
    assert seen[1]["query"].get("key") == KEYS[2] and "x-goog-api-key" not in seen[1]["headers"]


def test_an_unknown_client_key_is_refused_before_the_upgrade(server, emulator):
    with pytest.raises(simple_websocket.ConnectionError) as refused:
        simple_websocket.Client.connect(ws_url(server), headers={"X-API-KEY": "live-not-a-client-key-0000"})
    assert refused.value.status_code == 401
    answer = requests.get(server.url + PATH, headers={"X-API-KEY": "live-not-a-client-key-0000", "Connection": "Upgrade",
                                                      "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                                                      "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}, timeout=10)
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "UNAUTHORIZED"
    assert live_sessions(emulator) == []


def test_a_pool_key_refused_at_connect_hands_over_to_the_next(server, emulator):
    emulator.configure(live_refuse_keys=[KEYS[0]])
    for _ in range(3):  # whichever key the pool offers first
        ws, first = raw_session(server, headers={"X-API-KEY": CLIENT_A})
        assert "setupComplete" in first
        ws.close()
    recorded = sessions(server, 3)
    assert all(r[2] == 101 for r in recorded)
    keys = rows(server.database_url, "SELECT key_id, outcome FROM attempts JOIN request_log ON "
                                     "request_log.id = attempts.request_log_id WHERE route LIKE '/ws/%'")
    assert (fingerprint(KEYS[1]), "ok") in keys and (fingerprint(KEYS[0]), "ok") not in keys


def test_the_setups_model_must_be_allowed(gunicorn, emulator):
    server = gunicorn(GEMINI_API_KEY=KEYS[0], GEMINI_MODELS=f"gemini-2.5-flash,{LIVE_MODEL}",
                      ALLOWED_MODELS=f"gemini-2.5-flash,{LIVE_MODEL}", WEB_CONCURRENCY=1)
    ws = simple_websocket.Client.connect(ws_url(server))
    ws.send(json.dumps({"setup": {"model": "models/gemini-2.5-flash-native-audio-latest"}}))
    code, reason = closed(ws)
    assert code == 1008 and reason.startswith("MODEL_NOT_ALLOWED")
    assert live_sessions(emulator) == []
    assert sessions(server, 1)[0][2:5] == (400, "refused", "MODEL_NOT_ALLOWED")


def test_a_client_holds_at_most_its_sessions_at_once(gunicorn, emulator):
    server = gunicorn(GEMINI_API_KEY=KEYS[0], API_KEYS=CLIENT_A, LIVE_SESSIONS_PER_CLIENT="2", WEB_CONCURRENCY=2)
    held = [raw_session(server, headers={"X-API-KEY": CLIENT_A})[0] for _ in range(2)]
    extra = simple_websocket.Client.connect(ws_url(server), headers={"X-API-KEY": CLIENT_A})
    extra.send(json.dumps({"setup": {"model": f"models/{LIVE_MODEL}"}}))
    code, reason = closed(extra)
    assert code == 1013 and reason.startswith("SESSION_LIMIT")
    held[0].close()
    wait_for(lambda: len(rows(server.database_url, SESSIONS)) >= 2, message="the closed session's record")
    again, first = raw_session(server, headers={"X-API-KEY": CLIENT_A})  # a place was freed
    assert "setupComplete" in first
    for ws in (held[1], again):
        ws.close()


def test_a_spent_token_quota_closes_the_session(gunicorn, emulator):
    server = gunicorn(GEMINI_API_KEY=KEYS[0], API_KEYS=CLIENT_A, DAILY_TOKEN_QUOTA="30", WEB_CONCURRENCY=2)
    ws, _ = raw_session(server, headers={"X-API-KEY": CLIENT_A})
    turn(ws, "a question long enough to spend the day's small quota at once, word after word after word " * 3)
    code, reason = closed(ws)
    assert code == 1008 and reason.startswith("TOKEN_QUOTA_EXCEEDED")
    assert sessions(server, 1)[0][2:5] == (429, "quota", "TOKEN_QUOTA_EXCEEDED")
    with pytest.raises(simple_websocket.ConnectionError) as refused:  # spent: the next is refused at the door
        simple_websocket.Client.connect(ws_url(server), headers={"X-API-KEY": CLIENT_A})
    assert refused.value.status_code == 429


def test_sigterm_gives_open_sessions_goaway_and_records_each_once(gunicorn, emulator):
    server = gunicorn(GEMINI_API_KEY=KEYS[0], LIVE_GOAWAY_SECONDS="1", WEB_CONCURRENCY=1)
    ws, _ = raw_session(server)
    turn(ws, "before the restart")
    server.proc.send_signal(signal.SIGTERM)
    notice = json.loads(ws.receive(timeout=15))
    assert notice == {"goAway": {"timeLeft": "1s"}}
    code, reason = closed(ws)
    assert code == 1001 and "restarting" in reason
    server.proc.wait(30)
    assert [r[3] for r in rows(server.database_url, SESSIONS)] == ["shutdown"]


@pytest.mark.filterwarnings("ignore::google.genai.errors.ExperimentalWarning")  # the SDK's tokens are experimental
def test_an_ephemeral_token_minted_through_the_proxy_opens_a_session_from_a_client_with_no_key(server, front, emulator):
    minter = sdk(front, CLIENT_A, "v1alpha")
    token = minter.auth_tokens.create(config=types.CreateAuthTokenConfig(uses=1))
    assert token.name.startswith("auth_tokens/") and all(key not in token.name for key in KEYS)

    async def talk():
        browser = sdk(front, token.name, "v1alpha")
        async with browser.aio.live.connect(model=LIVE_MODEL, config=types.LiveConnectConfig(
                response_modalities=["TEXT"])) as session:
            await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(text="Hi")]),
                                              turn_complete=True)
            return "".join([message.text or "" async for message in session.receive()])

    assert "Hi" in asyncio.run(talk())
    recorded = sessions(server, 1)
    minted_by = rows(server.database_url, "SELECT client_id FROM owned_resources WHERE kind = 'auth_tokens'")
    assert recorded[0][0] is not None and minted_by == [(recorded[0][0],)]
    # A token is a credential: the database holds its digest and bodies with it redacted, never the token.
    stored = rows(server.database_url, "SELECT name FROM owned_resources") + [
        (decompress(body),) for (body,) in rows(server.database_url, "SELECT response_body FROM exchange_bodies "
                                                                     "WHERE response_body IS NOT NULL")]
    assert token.name not in str(stored) and "auth_tokens/[redacted]" in str(stored)
    # js-genai's form: the token in ?access_token=, straight to Gunicorn.
    second = requests.post(f"{server.url}/v1alpha/auth_tokens", json={"uses": 1}, headers={"X-API-KEY": CLIENT_A},
                           timeout=30).json()["name"]
    constrained = PATH.replace("v1beta", "v1alpha") + "Constrained"
    ws, first = raw_session(server, query=f"access_token={second}", path=constrained)
    assert "setupComplete" in first and turn(ws, "from js")[-1]["usageMetadata"]
    ws.close()
    assert [s["token"] for s in live_sessions(emulator)][-1] == second
    with pytest.raises(simple_websocket.ConnectionError) as refused:  # a token nobody minted here opens nothing
        simple_websocket.Client.connect(ws_url(server, PATH.replace("v1beta", "v1alpha") + "Constrained"),
                                        headers={"Authorization": "Token auth_tokens/not-minted-here"})
    assert refused.value.status_code == 401


def test_google_genai_reaches_the_proxy_over_wss_through_nginx_and_gets_upstream_goaway(server, front, emulator):
    async def talk():
        async with sdk(front, CLIENT_B).aio.live.connect(model=LIVE_MODEL, config=types.LiveConnectConfig(
                response_modalities=["TEXT"])) as session:
            await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(
                text="over TLS [[go-away]]")]), turn_complete=True)
            text = "".join([message.text or "" async for message in session.receive()])
            notices = []
            async for message in session.receive():
                if message.go_away:
                    notices.append(message.go_away.time_left)
                    break
            return text, notices

    text, notices = asyncio.run(talk())
    assert "over TLS" in text and notices
    assert sessions(server, 1)[0][2:4] == (101, "client_close")


def resumable(server, client, handle=None):
    ws = simple_websocket.Client.connect(ws_url(server), headers={"X-API-KEY": client})
    ws.send(json.dumps({"setup": {"model": f"models/{LIVE_MODEL}", "sessionResumption": {"handle": handle} if handle
                                  else {}}}))
    return ws


def test_a_session_resumes_on_the_key_that_began_it_for_its_client_only(server, emulator):
    ws = resumable(server, CLIENT_A)
    messages = [json.loads(ws.receive(timeout=30)) for _ in range(2)]
    handles = [m["sessionResumptionUpdate"]["newHandle"] for m in messages if "sessionResumptionUpdate" in m]
    messages = turn(ws, "remember me")
    handles += [m["sessionResumptionUpdate"]["newHandle"] for m in [json.loads(ws.receive(timeout=30))]
                if "sessionResumptionUpdate" in m]
    ws.close()
    sessions(server, 1)
    for _ in range(3):  # a round robin over the two keys would reach the other project at least once
        again = resumable(server, CLIENT_A, handles[-1])
        assert "setupComplete" in json.loads(again.receive(timeout=30))
        again.close()
    assert len({s["key"] for s in live_sessions(emulator)}) == 1
    stranger = resumable(server, CLIENT_B, handles[-1])
    code, reason = closed(stranger)
    assert code == 1008 and reason.startswith("NOT_FOUND")
    assert handles[-1] not in json.dumps(rows(server.database_url, "SELECT name FROM owned_resources"))


def test_the_clients_rate_limit_counts_sessions(gunicorn, emulator):
    server = gunicorn(GEMINI_API_KEY=KEYS[0], API_KEYS=CLIENT_A, RATE_LIMIT="2/minute", WEB_CONCURRENCY=1)
    for _ in range(2):
        ws, first = raw_session(server, headers={"X-API-KEY": CLIENT_A})
        assert "setupComplete" in first
        ws.close()
    with pytest.raises(simple_websocket.ConnectionError) as refused:
        simple_websocket.Client.connect(ws_url(server), headers={"X-API-KEY": CLIENT_A})
    assert refused.value.status_code == 429
    assert len(live_sessions(emulator)) == 2

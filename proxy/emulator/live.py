"""Gemini's Live API, emulated: the BidiGenerateContent WebSocket (v1, v1beta, v1alpha) and its Constrained form
for ephemeral tokens. Refusals are closes with Google's codes and reasons after the upgrade, as Google's are;
every frame the emulator sends is a binary frame of JSON, as Google's are."""
import json
import secrets
import socket
import time

from flask import request
from flask_sock import Sock
from simple_websocket import ConnectionClosed

from . import live_tokens, live_turns, replies

LIVE_MODELS = ("gemini-3.1-flash-live-preview", "gemini-2.5-flash-native-audio-preview-12-2025",
               "gemini-2.5-flash-native-audio-preview-09-2025", "gemini-2.5-flash-native-audio-latest",
               "gemini-live-2.5-flash-preview", "gemini-2.0-flash-live-001")
_PATH = "/ws/google.ai.generativelanguage.{version}.GenerativeService.{method}"
_SETUP_TIMEOUT = 10  # seconds a client has to send its setup before the emulator closes
_CLOSE_WAIT = 5  # seconds a refused client has to answer the emulator's close
_REASON_BYTES = 123  # the most a WebSocket close reason holds (RFC 6455 §5.5): Google's are cut there too
# Google's close codes: 1007 for a bad key or a malformed message, 1008 for a refused caller or model.
INVALID, POLICY = 1007, 1008


class LiveState:
    """What Live keeps beyond the request log: minted tokens, resumable sessions, and its control settings."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.tokens = {}  # a token's name: what it allows (live_tokens.mint)
        self.handles = {}  # a resumption handle: the session it resumes
        self.latency_ms = 0.0  # before each answer's first message
        self.refuse_keys = []  # keys closed at connect as invalid, though the emulator otherwise takes them
        self.drop_after_messages = None  # one shot: the next answer's socket is dropped after this many messages
        self.go_away_after_setup = False  # send goAway right after setupComplete

    def configure(self, settings):
        for name in ("latency_ms", "refuse_keys", "drop_after_messages", "go_away_after_setup"):
            if f"live_{name}" in settings:
                setattr(self, name, settings[f"live_{name}"])

    def settings(self):
        return {f"live_{name}": getattr(self, name)
                for name in ("latency_ms", "refuse_keys", "drop_after_messages", "go_away_after_setup")}


class Refusal(Exception):
    """Ends a session with a close code and Google's reason."""

    def __init__(self, code, reason):
        super().__init__(reason)
        self.code = code


class _Dropped(Exception):
    """The socket was cut without a close frame (a fault)."""


def register_live(app, state):
    live = LiveState()
    app.extensions["emulator_live"] = live
    sock = Sock(app)
    live_tokens.register_tokens(app, state, live)

    for version in ("v1", "v1beta", "v1alpha"):  # python-genai 3 dials v1 unless told
        @sock.route(_PATH.format(version=version, method="BidiGenerateContent"), endpoint=f"live_{version}")
        def bidi(ws, version=version):
            _serve(ws, state, live, version, constrained=False)

    @sock.route(_PATH.format(version="v1alpha", method="BidiGenerateContentConstrained"),
                endpoint="live_constrained")
    def constrained(ws):
        _serve(ws, state, live, "v1alpha", constrained=True)


def _credentials(constrained):
    """(key, token name) from the upgrade: a key as x-goog-api-key or ?key=; on the Constrained endpoint a
    token as ?access_token= or Authorization: Token (python-genai also sends it as x-goog-api-key)."""
    key = request.headers.get("x-goog-api-key") or request.args.get("key") or ""
    token = ""
    if constrained:
        authorization = request.headers.get("Authorization", "")
        token = request.args.get("access_token") or (
            authorization[6:].strip() if authorization.lower().startswith("token ") else "")
        if not token and key.startswith("auth_tokens/"):
            token = key
        if token:
            key = ""
    return key, token


def _serve(ws, state, live, version, constrained):
    key, token_name = _credentials(constrained)
    record = {"model": None, "action": "live.session", "key": key, "token": token_name or None,
              "version": version, "constrained": constrained, "query": dict(request.args),
              "headers": {k.lower(): v for k, v in request.headers.items()}, "body": None,
              "messages_in": [], "messages_out": [], "close": None, "time": time.time()}
    state.enter(record)
    try:
        _Session(ws, state, live, record, version).run(key, token_name)
    except Refusal as refusal:
        reason = str(refusal).encode()[:_REASON_BYTES].decode(errors="ignore")
        record["close"] = {"code": refusal.code, "reason": reason}
        ws.close(reason=refusal.code, message=reason)
        # The client answers the close; its reader takes that answer before the server goes on to end the
        # connection (Werkzeug's server would otherwise read it, and wait for the client's own time-out).
        ws.thread.join(_CLOSE_WAIT)
    except _Dropped:
        pass
    except ConnectionClosed:
        record["close"] = {"code": ws.close_reason, "reason": ws.close_message or "", "by": "client"}
    finally:
        state.leave()


class _Session:
    def __init__(self, ws, state, live, record, version):
        self.ws, self.state, self.live, self.record, self.version = ws, state, live, record, version
        self.setup, self.model, self.token, self.handle = {}, None, None, None
        self.context = {"TEXT": 0, "AUDIO": 0}  # the session's context so far, tokens by modality
        self.consumed = 0  # client messages consumed, for sessionResumptionUpdate
        self.calls = 0
        self.audio_seconds = 0.0

    def receive(self, timeout=None):
        raw = self.ws.receive(timeout=timeout)
        if raw is None:
            raise Refusal(POLICY, "The setup message was not received in time.")
        try:
            message = json.loads(raw)
        except ValueError:
            raise Refusal(INVALID, "Invalid JSON payload received.") from None
        self.record["messages_in"].append(message)
        return message if isinstance(message, dict) else {}

    def send(self, message):
        self.record["messages_out"].append(message)
        self.ws.send(json.dumps(message).encode())

    def run(self, key, token_name):
        first = self.receive(timeout=_SETUP_TIMEOUT)  # Google reads the setup before it closes a refused caller
        asked = live_turns.field(first, "setup")
        self.authorise(key, token_name, asked)
        if not isinstance(asked, dict):
            raise Refusal(INVALID, "Invalid JSON payload received. The first message must be setup.")
        self.setup = live_tokens.constrained_setup(self.token, asked) if self.token else asked
        self.record["body"] = self.setup
        self.model = str(live_turns.field(self.setup, "model") or "").removeprefix("models/")
        self.record["model"] = self.model
        if self.model not in LIVE_MODELS:
            raise Refusal(POLICY, f"models/{self.model} is not found for API version {self.version}, or is not "
                                  "supported for bidiGenerateContent. Call ListModels to see the list of "
                                  "available models and their supported methods.")
        self.resume()
        self.consumed += 1
        self.send({"setupComplete": {}})
        self.offer_handle()
        if self.live.go_away_after_setup:
            self.send({"goAway": {"timeLeft": "10s"}})
        self.context["TEXT"] += replies.count_tokens(" ".join(_texts(self.setup.get("systemInstruction"))))
        while True:
            self.answer(self.receive())

    def authorise(self, key, token_name, asked):
        if token_name:
            resuming = bool(live_turns.field(live_turns.field(asked, "sessionResumption"), "handle"))
            known = self.live.tokens.get(token_name)
            if known is not None:
                self.record["key"] = known["key"]  # a token works for the project of the key that minted it
            self.token = live_tokens.spend(self.live.tokens, self.state.lock, token_name, time.time(), resuming)
            if self.token is None:
                raise Refusal(POLICY, "The ephemeral token is invalid, expired or has no uses left.")
            return
        if not key:
            raise Refusal(POLICY, replies.missing_key_error()["error"]["message"])
        if key.startswith("auth_tokens/") or key in self.live.refuse_keys or (
                self.state.valid_keys and key not in self.state.valid_keys):
            raise Refusal(INVALID, "API key not valid. Please pass a valid API key.")

    def resume(self):
        resumption = live_turns.field(self.setup, "sessionResumption")
        if resumption is None:
            return
        wanted = live_turns.field(resumption, "handle")
        self.handle = f"emulated-handle-{secrets.token_hex(12)}"
        if not wanted:
            return
        with self.state.lock:
            held = self.live.handles.get(wanted)
        if held is None or not self.state._same_project(held["key"], self.record["key"]):
            raise Refusal(POLICY, "The session resumption handle is invalid or has expired.")
        self.context = dict(held["context"])
        self.record["resumed"] = wanted

    def offer_handle(self):
        if self.handle is None:
            return
        with self.state.lock:
            self.live.handles[self.handle] = {"key": self.record["key"], "model": self.model,
                                              "context": dict(self.context)}
        self.send({"sessionResumptionUpdate": {"newHandle": self.handle, "resumable": True,
                                               "lastConsumedClientMessageIndex": str(self.consumed - 1)}})

    def answer(self, message):
        """Act on one client message: answer a complete turn, a tool response, or keep what it adds."""
        self.consumed += 1
        content = live_turns.field(message, "clientContent")
        realtime = live_turns.field(message, "realtimeInput")
        tool_response = live_turns.field(message, "toolResponse")
        if content is not None:
            text = " ".join(t for turn in live_turns.field(content, "turns") or [] for t in _texts(turn))
            self.context["TEXT"] += replies.count_tokens(text)
            if live_turns.field(content, "turnComplete"):
                self.turn(text)
        elif realtime is not None:
            self.realtime(realtime)
        elif tool_response is not None:
            responses = live_turns.field(tool_response, "functionResponses") or []
            text = "; ".join(f"{r.get('name')} returned {json.dumps(r.get('response'))}" for r in responses)
            self.context["TEXT"] += replies.count_tokens(text)
            self.reply(f"the results: {text}")
        elif "setup" not in message or len(message) != 1:
            name = next(iter(message), "")
            raise Refusal(INVALID, f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.')

    def realtime(self, realtime):
        text = live_turns.field(realtime, "text")
        chunks = list(live_turns.field(realtime, "mediaChunks") or [])
        if live_turns.field(realtime, "audio") is not None:
            chunks.append(live_turns.field(realtime, "audio"))
        for chunk in chunks:
            if str(live_turns.field(chunk, "mimeType") or "").startswith("audio/"):
                seconds = live_turns.audio_seconds(chunk)
                self.audio_seconds += seconds
                self.context["AUDIO"] += live_turns.audio_tokens(seconds)
        if text:
            self.context["TEXT"] += replies.count_tokens(text)
            self.turn(text)
        ended = live_turns.field(realtime, "audioStreamEnd") or live_turns.field(realtime, "activityEnd") is not None
        if ended and self.audio_seconds:
            heard = f"{self.audio_seconds:.2f} seconds of audio"
            self.audio_seconds = 0.0
            if live_turns.field(self.setup, "inputAudioTranscription") is not None:
                self.send({"serverContent": {"inputTranscription": {"text": f"Emulated transcript of {heard}."}}})
            self.turn(heard)

    def turn(self, text):
        """The model's turn after the user's: a tool call when the text names a declared function."""
        call = live_turns.tool_call(self.setup, text, self.calls)
        if call is not None:
            self.calls += 1
            self.pause()
            self.send(call)
            return
        self.reply(text)

    def pause(self):
        if self.live.latency_ms:
            time.sleep(float(self.live.latency_ms) / 1000.0)

    def reply(self, prompt):
        messages = live_turns.answer(self.model, self.setup, prompt, self.state.stream_chunk_words,
                                     self.context)
        drop_after, self.live.drop_after_messages = self.live.drop_after_messages, None
        self.pause()
        for number, message in enumerate(messages):
            if drop_after is not None and number >= int(drop_after):
                self.drop()
            self.send(message)
        spoken = "AUDIO" in live_turns.modalities(self.setup)
        self.context["AUDIO" if spoken else "TEXT"] += messages[-1]["usageMetadata"]["responseTokenCount"]
        self.offer_handle()
        if "[[go-away]]" in prompt:
            self.send({"goAway": {"timeLeft": "10s"}})

    def drop(self):
        """Cut the TCP connection with no close frame, as a network fault or a crashed server would."""
        self.record["close"] = {"code": 1006, "reason": "dropped by a fault"}
        try:
            self.ws.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.ws.sock.close()
        self.ws.connected = False
        raise _Dropped()


def _texts(content):
    if isinstance(content, str):
        return [content]
    parts = live_turns.field(content, "parts") or []
    return [part["text"] for part in parts if isinstance(part, dict) and isinstance(part.get("text"), str)]

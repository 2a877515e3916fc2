"""One Live session, emulated: its setup (a token's locked fields applied), then each client message in
turn, answered with live_turns' messages; a refusal raises Refusal, which live.py turns into a close."""
import json
import secrets
import socket
import time

from . import live_tokens, live_turns, replies

LIVE_MODELS = ("gemini-3.1-flash-live-preview", "gemini-2.5-flash-native-audio-preview-12-2025",
               "gemini-2.5-flash-native-audio-preview-09-2025", "gemini-2.5-flash-native-audio-latest",
               "gemini-live-2.5-flash-preview", "gemini-2.0-flash-live-001")
_SETUP_TIMEOUT = 10  # seconds a client has to send its setup before the emulator closes
# Google's close codes: 1007 for a bad key or a malformed message, 1008 for a refused caller or model.
INVALID, POLICY = 1007, 1008


class Refusal(Exception):
    """Ends a session with a close code and Google's reason."""

    def __init__(self, code, reason):
        super().__init__(reason)
        self.code = code


class Dropped(Exception):
    """The socket was cut without a close frame (a fault)."""


class Session:
    def __init__(self, ws, state, live, record, version):
        self.ws, self.state, self.live, self.record, self.version = ws, state, live, record, version
        self.setup, self.model, self.token, self.handle = {}, None, None, None
        self.context = {"TEXT": 0, "AUDIO": 0}  # the session's context so far, tokens by modality
        self.consumed = 0  # client messages consumed, for sessionResumptionUpdate
        self.calls = 0
        self.pending = False  # a tool call awaits its response
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
        instruction = live_turns.field(self.setup, "systemInstruction")
        self.context["TEXT"] += replies.count_tokens(" ".join(_texts(instruction)))
        while True:
            message = self.receive()
            if self.token is not None and time.time() > self.token["expire"]:
                raise Refusal(POLICY, "The ephemeral token has expired.")
            self.answer(message)

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
            if self.pending:  # as Google does: no realtime input while the model waits for a tool's response
                raise Refusal(POLICY, "Operation is not implemented, or supported, or enabled.")
            self.realtime(realtime)
        elif tool_response is not None:
            responses = live_turns.field(tool_response, "functionResponses") or []
            self.pending = False
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
            self.pending = True
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
        self.record["close"] = {"code": 1006, "reason": "dropped by a fault", "by": "emulator"}
        try:
            self.ws.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.ws.sock.close()
        self.ws.connected = False
        raise Dropped()


def _texts(content):
    if isinstance(content, str):
        return [content]
    parts = live_turns.field(content, "parts") or []
    return [part["text"] for part in parts if isinstance(part, dict) and isinstance(part.get("text"), str)]

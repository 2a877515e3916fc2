"""Gemini's Live API on the wire: its WebSocket paths, the setup message a session begins with, and what the
server's messages say about the session (usage, turns, the end of it).

A client's frames are parsed once here and what goes upstream is built from the parsed value, so a frame
another parser would read differently (a repeated field, NaN, nesting without end) never reaches Gemini."""
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Optional

from . import credentials, query as queries
from .jsonbody import BadJson, loads
from .routes import NAME, valid_model_name
from .usage import count

PREFIX = "/ws/"
_PATH = re.compile(r"/ws/google\.ai\.generativelanguage\.(v1beta|v1alpha|v1)\.GenerativeService\."
                   r"(BidiGenerateContent|BidiGenerateContentConstrained)")
MAX_FRAME = 16 * 1024 * 1024  # bytes of one message either way: a turn's audio is sent in many
MAX_SETUP = 1024 * 1024  # bytes of the setup message (a system instruction, tools)

# Close codes (RFC 6455 section 7.4.1), as Gemini uses them and for the proxy's own reasons.
NORMAL, GOING_AWAY, POLICY, INTERNAL, TRY_LATER = 1000, 1001, 1008, 1011, 1013
_REASON_BYTES = 123  # what a close frame's reason may hold


class BadFrame(ValueError):
    """A client's message the Live API does not take; the session closes with POLICY and this reason."""


@dataclass(frozen=True)
class Endpoint:
    version: str  # v1beta | v1alpha | v1
    constrained: bool  # BidiGenerateContentConstrained: ephemeral tokens

    @property
    def path(self):
        method = "BidiGenerateContentConstrained" if self.constrained else "BidiGenerateContent"
        return f"/ws/google.ai.generativelanguage.{self.version}.GenerativeService.{method}"

    @property
    def action(self):
        return "BidiGenerateContentConstrained" if self.constrained else "BidiGenerateContent"


def endpoint(path):
    """The Live endpoint a path names exactly, or None."""
    found = _PATH.fullmatch(path or "")
    return Endpoint(found.group(1), found.group(2).endswith("Constrained")) if found else None


@dataclass(frozen=True)
class LiveRequest:
    """The upgrade request of a Live session, read once: its endpoint, the credentials it presents, and an
    ephemeral token (auth_tokens/...) on the constrained endpoint."""

    endpoint: Endpoint
    presented: credentials.Presented
    token: Optional[tuple] = None  # (slot: "token" | "access_token", "auth_tokens/...")


def read_request(path, query_string, headers):
    """The LiveRequest of an upgrade; None for a path that is no Live endpoint. BadQuery, BadCredentials."""
    found = endpoint(path)
    if found is None:
        return None
    query = queries.parse(query_string, ephemeral_token=found.constrained)
    presented = credentials.presented(headers, query.key, native=True)
    token = _token(headers, query)
    gemini = presented.gemini
    if gemini is not None and gemini[1].startswith("auth_tokens/"):
        # python-genai sends its token as x-goog-api-key too: one credential, in two places.
        if token is not None and token[1] != gemini[1]:
            raise credentials.BadCredentials("The request carries two different ephemeral tokens; send one.")
        token = token or ("token", gemini[1])
        presented = credentials.Presented(presented.api_key, "" if gemini[0] == credentials.BEARER else
                                          presented.bearer, None)
        _check_token(token[1])
    if token is not None and (presented.gemini or presented.api_key):
        raise credentials.BadCredentials("The request carries an ephemeral token and a key; send one credential.")
    if token is not None and not found.constrained:
        raise credentials.BadCredentials("Ephemeral tokens open BidiGenerateContentConstrained sessions only.")
    return LiveRequest(found, presented, token)


def _token(headers, query):
    authorization = headers.get("Authorization", "").strip()
    slots = []
    if authorization[:6].lower() == "token ":
        slots.append(("token", authorization[6:].strip()))
    if query.get("access_token"):
        slots.append(("access_token", query.get("access_token")))
    if len(slots) > 1:
        raise credentials.BadCredentials("The request carries two ephemeral tokens; send one.")
    if not slots:
        return None
    slot, value = slots[0]
    _check_token(value)
    return slot, value


def _check_token(value):
    if not value.startswith("auth_tokens/") or not NAME.fullmatch(value[len("auth_tokens/"):]):
        raise credentials.BadCredentials("An ephemeral token is auth_tokens/ and a token's name.")


@dataclass(frozen=True)
class Setup:
    model: str  # bare: gemini-live-2.5-flash-preview
    message: dict  # the whole parsed message, {"setup": {...}}, from which the upstream frame is built

    def encoded(self):
        return json.dumps(self.message, separators=(",", ":"))

    @property
    def resumes(self):
        """The session resumption handle the setup resumes, if any."""
        resumption = self.message["setup"].get("sessionResumption") or self.message["setup"].get("session_resumption")
        handle = resumption.get("handle") if isinstance(resumption, dict) else None
        return handle if isinstance(handle, str) and handle else None


def handle_name(handle):
    """The name a session resumption handle is kept under as a resource: a digest, never the handle."""
    return "liveSessions/" + hashlib.sha256(handle.encode()).hexdigest()[:40]


def read_setup(frame, constrained=False):
    """The first client message: {"setup": {"model": "models/...", ...}}; BadFrame otherwise. On the
    constrained endpoint the token may have locked the model, so the setup may name none."""
    if isinstance(frame, bytes):
        if len(frame) > MAX_SETUP:
            raise BadFrame("The setup message is too large.")
        try:
            frame = frame.decode("utf-8")
        except UnicodeDecodeError:
            raise BadFrame("The setup message is not UTF-8 JSON.") from None
    if len(frame) > MAX_SETUP:
        raise BadFrame("The setup message is too large.")
    try:
        message = loads(frame)
    except BadJson as exc:
        raise BadFrame(f"The setup message is not valid JSON: {exc}") from None
    if not isinstance(message, dict) or set(message) != {"setup"} or not isinstance(message["setup"], dict):
        raise BadFrame("The first message of a Live session must be a setup message, and only that.")
    model = message["setup"].get("model")
    if model is None and constrained:
        return Setup("", message)
    if not valid_model_name(model):
        raise BadFrame("The setup message must name a model (models/...).")
    return Setup(model.removeprefix("models/"), message)


@dataclass(frozen=True)
class ClientFrame:
    encoded: str  # what goes upstream, built from the parsed message
    kind: str  # clientContent | realtimeInput | toolResponse
    media_bytes: int  # audio and video bytes it carries: counted, never stored
    stored: str  # the message as it may be kept, media replaced by their sizes
    turn_complete: bool = False  # a clientContent that ends the client's turn


_CLIENT_KINDS = {"clientContent": "clientContent", "client_content": "clientContent",
                 "realtimeInput": "realtimeInput", "realtime_input": "realtimeInput",
                 "toolResponse": "toolResponse", "tool_response": "toolResponse"}


def read_client_frame(frame):
    """A later client message, parsed once (BadFrame if it is not one of the Live API's)."""
    if isinstance(frame, bytes):
        try:
            frame = frame.decode("utf-8")
        except UnicodeDecodeError:
            raise BadFrame("A Live message is UTF-8 JSON.") from None
    try:
        message = loads(frame)
    except BadJson as exc:
        raise BadFrame(f"A Live message is not valid JSON: {exc}") from None
    if not isinstance(message, dict) or len(message) != 1:
        raise BadFrame("A Live message holds exactly one of clientContent, realtimeInput, toolResponse.")
    ((name, body),) = message.items()
    kind = _CLIENT_KINDS.get(name)
    if kind is None:
        raise BadFrame(f"{name[:40]!r} is not a message a Live client sends.")
    if not isinstance(body, dict):
        raise BadFrame(f"{name} must be an object.")
    stored, media = without_media(message)
    ends_turn = kind == "clientContent" and (body.get("turnComplete") is True or body.get("turn_complete") is True)
    return ClientFrame(json.dumps(message, separators=(",", ":")), kind, media,
                       json.dumps(stored, separators=(",", ":")), ends_turn)


def without_media(message):
    """(a copy of `message` with base64 media replaced by their size, the bytes they held)."""
    total = 0

    def strip(value):
        nonlocal total
        if isinstance(value, dict):
            data = value.get("data")
            if isinstance(data, str) and ("mimeType" in value or "mime_type" in value):
                size = len(data) * 3 // 4 - data.count("=", -2)  # base64's padding holds no byte
                total += size
                return {**{k: v for k, v in value.items() if k != "data"}, "data": f"[{size} bytes]"}
            return {k: strip(v) for k, v in value.items()}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(message), total


@dataclass
class ServerNews:
    """What one server message says about the session."""

    setup_complete: bool = False
    turn_complete: bool = False
    go_away: bool = False
    usage: Optional[dict] = None  # the message's usageMetadata
    media_bytes: int = 0
    stored: str = ""  # the message as it may be kept, media replaced by their sizes
    handle: Optional[str] = None  # a resumable session's new resumption handle


def read_server_frame(frame):
    """What a server message says (it is relayed as it came, byte for byte); an unreadable one says nothing."""
    try:
        message = json.loads(frame)
    except (ValueError, TypeError):
        return ServerNews(stored=json.dumps({"unreadable": len(frame)}))
    if not isinstance(message, dict):
        return ServerNews(stored=json.dumps({"unreadable": len(frame)}))
    content = message.get("serverContent")
    usage = message.get("usageMetadata")
    stored, media = without_media(message)
    update = message.get("sessionResumptionUpdate")
    handle = update.get("newHandle") if isinstance(update, dict) and update.get("resumable") else None
    return ServerNews(
        handle=handle if isinstance(handle, str) and handle else None,
        setup_complete="setupComplete" in message,
        turn_complete=isinstance(content, dict) and content.get("turnComplete") is True,
        go_away="goAway" in message,
        usage=usage if isinstance(usage, dict) else None,
        media_bytes=media, stored=json.dumps(stored, separators=(",", ":")))


def _count(usage, *names):
    """The first of `names` that holds a count (wire.usage's reading: what fits the record's columns)."""
    for name in names:
        value = count(usage.get(name))
        if value is not None:
            return value
    return 0


@dataclass
class SessionUsage:
    """A session's tokens, summed over the usageMetadata of its turns (each reports its own turn)."""

    prompt: int = 0
    response: int = 0
    thoughts: int = 0
    cached: int = 0
    tool_use_prompt: int = 0
    total: int = 0
    reports: int = 0

    def add(self, usage):
        self.reports += 1
        prompt, response = _count(usage, "promptTokenCount"), _count(usage, "responseTokenCount",
                                                                       "candidatesTokenCount")
        thoughts, tool_use = _count(usage, "thoughtsTokenCount"), _count(usage, "toolUsePromptTokenCount")
        self.prompt += prompt
        self.response += response
        self.thoughts += thoughts
        self.cached += _count(usage, "cachedContentTokenCount")
        self.tool_use_prompt += tool_use
        self.total += _count(usage, "totalTokenCount") or prompt + response + thoughts + tool_use


def reason(text):
    """A close reason that fits a close frame (123 bytes of UTF-8)."""
    encoded = text.encode("utf-8")[:_REASON_BYTES]
    return encoded.decode("utf-8", "ignore")


def go_away(seconds):
    """The notice Gemini gives a session it will end: {"goAway": {"timeLeft": "10s"}}."""
    return json.dumps({"goAway": {"timeLeft": f"{max(0, int(seconds))}s"}})

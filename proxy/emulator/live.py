"""Gemini's Live API, emulated: the BidiGenerateContent WebSocket (v1, v1beta, v1alpha) and its Constrained form
for ephemeral tokens (the session itself: live_session.py). Refusals are closes with Google's codes and reasons
after the upgrade, as Google's are; every frame the emulator sends is a binary frame of JSON, as Google's are."""
import socket
import time

from flask import request
from flask_sock import Sock
from simple_websocket import ConnectionClosed

from . import live_tokens
from .live_session import Dropped, Refusal, Session

_PATH = "/ws/google.ai.generativelanguage.{version}.GenerativeService.{method}"
_CLOSE_WAIT = 2  # seconds a client has to answer the emulator's close (simple_websocket's client never does)
_REASON_BYTES = 123  # the most a WebSocket close reason holds (RFC 6455 §5.5): Google's are cut there too


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
              "messages_in": [], "messages_out": [], "close": None, "resumed": None, "time": time.time()}
    state.enter(record)
    try:
        Session(ws, state, live, record, version).run(key, token_name)
    except Refusal as refusal:
        reason = str(refusal).encode()[:_REASON_BYTES].decode(errors="ignore")
        record["close"] = {"code": refusal.code, "reason": reason, "by": "emulator"}
        ws.close(reason=refusal.code, message=reason)
    except Dropped:
        pass
    except ConnectionClosed:
        record["close"] = {"code": ws.close_reason, "reason": ws.close_message or "", "by": "client"}
    except Exception:
        record["close"] = {"code": 1011, "reason": "Internal error occurred.", "by": "emulator"}
        ws.close(reason=1011, message="Internal error occurred.")  # Google's words for its own failures
        raise
    finally:
        state.leave()
        _end(ws)


def _end(ws):
    """End the TCP connection once the closing handshake is done, as a WebSocket server does first: the
    web server's own socket outlives the session's (gevent keeps it; Werkzeug would read the client's close
    answer itself), and a client waits out its close time-out until the connection ends."""
    ws.thread.join(_CLOSE_WAIT)  # the reader takes the client's answer to the close, and stops
    try:
        ws.sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass

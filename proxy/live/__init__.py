"""The Live API's entrance: Gemini's BidiGenerateContent WebSocket, relayed with the key swapped.

The upgrade request passes every hook a request passes (who is calling, rate limit, token quota, the
in-flight note a dying worker leaves), so a refused client gets the proxy's JSON error before any socket
is opened; the session then runs inside the view (flask-sock), and is recorded once when it ends."""
import logging

from flask import Blueprint, current_app
from flask_sock import Sock

from ..access import budgets
from ..requestctx import current as current_state
from ..wire.usage import Usage, count
from ..wire.live import MAX_FRAME, handle_name
from .record import record_session
from .relay import CLIENT, SERVER, LiveKey, LiveRelay

log = logging.getLogger(__name__)
bp = Blueprint("live", __name__)
sock = Sock()


def init_live(app):
    # Frames larger than this are refused by the socket itself (wsproto), before they are buffered whole.
    app.config.setdefault("SOCK_SERVER_OPTIONS", {"max_message_size": MAX_FRAME})
    app.register_blueprint(bp)


@sock.route("/ws/<string:method>", bp=bp)
def live_session(ws, method):
    """One Live session (the path was checked against the Live endpoints before the upgrade)."""
    app, state = current_app._get_current_object(), current_state()
    request = state.live
    client = state.client
    cap = app.config["LOG_BODY_MAX_BYTES"] if app.config["LOG_BODIES"] else 0
    relay = LiveRelay(app, request.endpoint, _key(state, request), client.id if client else None,
                      _account(app, state), cap, _spend(app, state))
    state.native_recorded = True  # recorded here, once the session has ended
    notes = relay.run(ws)
    if notes.handle and notes.key_id:
        _keep_handle(app, notes, client)
    record_session(app, state, request, notes, relay.frames)


def _spend(app, state):
    """Counts a session's cost against its budgets turn by turn: the upgrade's holds (nothing: a Live
    upgrade holds no estimate) are let go, so the session's record does not count its turns again."""
    if not budgets.budgets_of(state.client, app.config):
        return None
    budgets.release_holds(app, state.request_id, state.client)

    def spend(metadata, model):
        # Live's usageMetadata names the answer's tokens responseTokenCount (generateContent's: candidates).
        usage = Usage(prompt=count(metadata.get("promptTokenCount")),
                      candidates=count(metadata.get("responseTokenCount", metadata.get("candidatesTokenCount"))),
                      cached=count(metadata.get("cachedContentTokenCount")),
                      thoughts=count(metadata.get("thoughtsTokenCount")),
                      tool_use_prompt=count(metadata.get("toolUsePromptTokenCount")))
        return budgets.spend_now(app, state.client, usage, model)

    return spend


def _keep_handle(app, notes, client):
    """The session may be resumed: on its key, by its client (the last handle is the one to resume with)."""
    try:
        app.extensions["resource_owners"].record([handle_name(notes.handle)], notes.key_id,
                                                 client.id if client else None, notes.model)
    except Exception:  # noqa: BLE001 - a session that cannot be resumed on its key still ended well
        log.warning("Live session %s: its resumption handle was not kept", notes.session_id, exc_info=True)


def _key(state, request):
    """The client's own Gemini key or ephemeral token, as it came; otherwise the pool's."""
    if request.token is not None:
        slot, token = request.token
        return LiveKey(CLIENT, token, slot)
    presented = request.presented.gemini if not state.proxy_key_slot else None
    if presented:
        return LiveKey(CLIENT, presented[1], presented[0])
    return LiveKey(SERVER)


def _account(app, state):
    """Counts a session's tokens against its client's daily quota as they are reported."""
    client = state.client
    quotas = app.extensions["quotas"]
    quota = None if client is None else (
        client.daily_token_quota if client.daily_token_quota is not None else app.config["DAILY_TOKEN_QUOTA"])
    if not quota:
        return lambda tokens: None
    day = state.started_at.date().isoformat()
    # The upgrade's own hold (none: a session's tokens are not known ahead) is let go: the turns count
    # as they come, and the session's record must not count them again.
    quotas.settle(client.id, state.request_id, 0)

    def account(tokens):
        if tokens:
            quotas.spend(client.id, day, tokens)
        return quota - quotas.used(client.id, day)

    return account


"""Hooks that note each admitted request that will be recorded, and forget it once its response has closed,
so that a worker dying in between leaves behind what its survivors need to record it (storage.inflight)."""
import itertools
import os
from functools import partial

from ..requestctx import LIVE, NATIVE, current as current_state, current_request
from .inflight import WORKER_DIED
from .records import RequestRecord
from .recorder import UNPARSED_NATIVE

_MESSAGE = "The worker serving this request died before the request ended; only its start is known."
_keys = itertools.count()  # a client may send one X-Request-ID with several requests at once


def hooks(inflight):
    """(before_request, after_request) noting requests in `inflight`: the before hook goes after the access
    checks (a request they refuse is recorded whole at once), the after hook before the recorder's, so
    that it runs after it and a request is forgotten only once its record is in the spool."""

    def note_admitted():
        # What is known for the asking; the route and model are worked out only if the note is replayed.
        state, incoming = current_state(), current_request()
        if not state.recorded_area or incoming.method == "OPTIONS":
            return
        client = state.client
        state.inflight_key = key = next(_keys)
        rule = incoming.url_rule
        native = state.native  # the pass-through's parsed route: its template and model
        routed = (native.route.template, native.route.model) if native is not None else (
            (state.live.endpoint.path, None) if state.live is not None else None)
        inflight.start(key, {
            "request_id": state.request_id, "started_at": {"$dt": state.started_at.isoformat()}, "area": state.area,
            "rule": rule.rule if rule is not None else None, "path": incoming.path, "method": incoming.method,
            "native": routed,
            "client_id": client.id if client is not None else None, "worker": os.getpid()})

    def forget_on_close(response):
        key = current_state().inflight_key
        if key is not None:
            response.call_on_close(partial(inflight.end, key))
        return response

    return note_admitted, forget_on_close


def _route_and_model(note):
    """The route as the request's record would name it (storage.recorder), and the model its path names."""
    if note.get("area") not in (NATIVE, LIVE):
        return note.get("rule") or note.get("path") or "", None
    route, model = note.get("native") or (UNPARSED_NATIVE, None)
    return route, model


def aborted(note):
    """The record of a request whose worker died: what was known when it was admitted."""
    route, model = _route_and_model(note)
    return RequestRecord(request_id=note["request_id"], created_at=note["started_at"], route=route,
                         method=note.get("method") or "POST", client_id=note.get("client_id"),
                         model_requested=model, status_code=502, error_code=WORKER_DIED, error_message=_MESSAGE,
                         latency_ms=0.0, attempt_count=0)

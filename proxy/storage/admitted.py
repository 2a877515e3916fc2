"""Hooks that note each admitted request that will be recorded, and forget it once its response has closed,
so that a worker dying in between leaves behind what its survivors need to record it (storage.inflight)."""
import itertools
import os
from functools import partial

from flask import current_app, g, request

from ..passthrough.forwarder import native_route, parse_model_path
from ..passthrough.uploads import PREFIX as UPLOAD_PREFIX

_keys = itertools.count()  # a client may send one X-Request-ID with several requests at once


def _route_and_model():
    """The route as the request's record names it (storage.recorder), and the model when the path says it."""
    if g.get("area") != "native":
        return (request.url_rule.rule if request.url_rule else request.path), None
    version, _, path = request.path.lstrip("/").partition("/")
    prefix = ""
    if f"{version}/" == UPLOAD_PREFIX:
        prefix = UPLOAD_PREFIX
        version, _, path = path.partition("/")
    return native_route(version, path, prefix), parse_model_path(path)[0]


def note_admitted():
    """before_request, after the access checks: a request refused by them is recorded whole at once."""
    state = g._get_current_object()
    if state.get("area") not in ("api", "native") or request.method == "OPTIONS":
        return
    route, model = _route_and_model()
    client = state.get("client")
    state.inflight_key = key = next(_keys)
    current_app.extensions["records"].inflight.start(key, {
        "request_id": state.request_id, "started_at": state.started_at, "route": route, "method": request.method,
        "client_id": client.id if client else None, "model": model, "worker": os.getpid()})


def forget_on_close(response):
    """after_request, registered before the recorder's hook so that it runs after it: the request is
    forgotten only after its record is in the spool."""
    key = g.get("inflight_key")
    if key is not None:
        response.call_on_close(partial(current_app.extensions["records"].inflight.end, key))
    return response

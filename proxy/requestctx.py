"""Per-request state: one typed object per request, its id and start time, and the headers every answer carries.

Every hook, view and error handler that learns something about a request writes it here, and the
recorders read it from here: the contract between them is this class, not loose attributes on `g`."""
from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Optional

from flask import has_request_context
from flask.globals import _cv_app as _app_context  # the context variables behind flask.g and flask.request
from flask.globals import _cv_request as _request_context

if TYPE_CHECKING:  # types only: the request state stands below everything that fills it in
    from .errors import ProxyError
    from .wire.native import NativeRequest

# A client-supplied id is kept only if it is short and plain, so it is safe in logs and headers.
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
API, NATIVE, LIVE, ADMIN = "api", "native", "live", "admin"  # the areas of the app, by path (access.auth.area_of)
RECORDED_AREAS = (API, NATIVE, LIVE)  # the generation APIs, whose every request is recorded, limited, counted
_ENVIRON_KEY = "gemini_proxy.request_state"  # where begin leaves the state for answer_headers
_ID_ONLY, _ID_AND_CACHE = frozenset({"x-request-id"}), frozenset({"x-request-id", "x-cache"})


@dataclass(slots=True, eq=False)
class RequestState:
    """What the request's hooks and views learnt, in the order they learn it."""

    request_id: str = ""
    started_at: Optional[datetime] = None  # UTC, naive, as the database stores it
    started: float = 0.0  # time.perf_counter() at the start, for elapsed_ms
    # access.auth: which API the path belongs to, who is calling, and on the pass-through what it sent
    area: Optional[str] = None
    client: Any = None  # access.clients.Caller, or None when the proxy is open
    native: Optional["NativeRequest"] = None  # the pass-through's path, query and credentials, parsed once
    live: Any = None  # wire.live.LiveRequest of a Live session's upgrade
    upload: Any = None  # access.upload_grants.UploadPass of a chunk sent to an upload URL the proxy gave out
    proxy_key_slot: Optional[str] = None  # where a native client put its proxy key, swapped for a server key
    # storage.admitted and observability: what a worker holds for this request until its response closes
    inflight_key: Optional[int] = None
    in_flight: bool = False
    # the entrances: what was asked and what came of it
    model_requested: Optional[str] = None
    generation_request: Any = None  # upstream.messages.GenerationRequest on /gemini/*
    generation: Any = None  # upstream.messages.Generation on /gemini/*
    cache_status: Optional[str] = None  # HIT or MISS when the response cache was consulted
    error: Optional["ProxyError"] = None  # the typed error the request was answered with
    native_recorded: bool = False  # the pass-through (and a Live session) records itself, when it ends

    def elapsed_ms(self):
        return round((time.perf_counter() - self.started) * 1000, 3)

    @property
    def recorded_area(self):
        """Whether the request is on a generation API (recorded, limited and counted)."""
        return self.area in RECORDED_AREAS


def _globals():
    """Flask's `g` itself, not its proxy: found in one call, where the proxy takes three on every access, and
    the state is asked for a dozen times a request."""
    try:
        return _app_context.get().g
    except LookupError:
        raise RuntimeError("Working outside of application context.") from None


# The request context itself (one call, LookupError outside one), where flask.globals.request_ctx is a proxy.
current_request_context = _request_context.get


def current_request():
    """Flask's request itself, not its proxy: one call, where each attribute read through the proxy takes
    four, on every hook's read of the request."""
    try:
        return _request_context.get().request
    except LookupError:
        raise RuntimeError("Working outside of request context.") from None


def current_application():
    """The app itself, not flask.current_app's proxy (one call for every attribute read through it)."""
    try:
        return _app_context.get().app
    except LookupError:
        raise RuntimeError("Working outside of application context.") from None


def current():
    """This request's state (an empty one if the request began before `begin` ran)."""
    try:
        context = _app_context.get().g  # _globals(), inlined: every hook and view asks
    except LookupError:
        context = _globals()  # which raises Flask's error
    try:
        return context.request_state
    except AttributeError:
        state = context.request_state = RequestState()
        return state


def current_request_id(default=None):
    """The id of the request being served, or `default` outside one (logging, errors raised elsewhere)."""
    if not has_request_context():
        return default
    state = getattr(_globals(), "request_state", None)
    return state.request_id if state is not None else default


def begin():
    """before_request, the first: the request's state, with its id and start time."""
    environ = current_request().environ
    incoming = environ.get("HTTP_X_REQUEST_ID", "")  # request.headers.get, without building its view
    environ[_ENVIRON_KEY] = _globals().request_state = RequestState(
        request_id=incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex,
        started_at=datetime.now(timezone.utc).replace(tzinfo=None),
        started=time.perf_counter())


def answer_headers(environ):
    """The headers every answer carries, from the state its request left in the WSGI environ: (lower-case
    names they replace, (name, value) pairs). Added by access.security's middleware to the plain list the
    app hands start_response, where Werkzeug's header methods cost a dozen calls a header."""
    state = environ.get(_ENVIRON_KEY)
    if state is None:  # the request never began (begin did not run)
        return _ID_ONLY, [("X-Request-ID", "")]
    if state.cache_status:
        return _ID_AND_CACHE, [("X-Request-ID", state.request_id), ("X-Cache", state.cache_status)]
    return _ID_ONLY, [("X-Request-ID", state.request_id)]

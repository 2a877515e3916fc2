"""Sending a native call upstream through the engine: retry or fallback only before the first byte."""
import logging
from dataclasses import dataclass, field
from functools import cached_property
from typing import Optional

from ..upstream.engine import DEADLINE, EXHAUSTED, NO_TIME_TO_RETRY, GaveUp, NoKeys, Plan
from ..upstream.failures import TIMEOUT, UNTRUSTED
from ..upstream.keysources import CALLERS_OWN
from ..upstream.raw_http import Reply, answered  # noqa: F401 (Reply: the views build one for a cached answer)
from ..wire import jsonbody
from ..wire.query import Query
from ..wire.routes import GENERATION_ACTIONS, Route
from .keys import SERVER, auth_headers

log = logging.getLogger(__name__)


class NativeError(Exception):
    """The proxy could not get an answer from upstream at all; sent in Google's error shape."""

    def __init__(self, status, google_status, message, attempts):
        super().__init__(message)
        self.status, self.google_status, self.message, self.attempts = status, google_status, message, attempts

    def body(self):
        return {"error": {"code": self.status, "message": self.message, "status": self.google_status}}


@dataclass
class NativeCall:
    method: str
    route: Route  # parsed once from the client's path; what goes upstream is built from it
    query: Query  # decoded, without credentials
    body: bytes
    headers: dict  # to forward, without auth
    key: object  # KeyChoice
    client_headers: dict = field(default_factory=dict)  # as the client sent them, for the log
    model: Optional[str] = None  # the model checked, forwarded and recorded
    conversation: bool = False  # carries a thought signature or an earlier interaction: no fallback

    @property
    def action(self):
        return self.route.action

    @property
    def openai(self):
        return self.route.openai

    @property
    def streaming(self):
        if self.openai:
            return (self.payload or {}).get("stream") is True
        return self.action == "streamGenerateContent"

    def prepared(self, model, server_key):
        """The upstream path and query, and the headers, for an attempt on `model` (a fallback's model
        replaces the one asked for in the path) with `server_key` (None: the client's own)."""
        path = self.route.upstream(model if self.route.model == self.model else None)
        query = self.query.encoded(self.key.key if self.key.where == "query" else None)
        headers = dict(self.headers)
        headers.update(auth_headers(self.key, server_key))
        return (path + "?" + query if query else path), headers

    @cached_property
    def payload(self):
        """The JSON body as a dict, parsed once and only when something asks (None if it is not one)."""
        try:
            return self.parsed_body()
        except jsonbody.BadJson:
            return None

    def parsed_body(self):
        """The JSON body as a dict (None if empty or not an object); BadJson if it is not bounded JSON."""
        value = jsonbody.loads(self.body) if self.body else None
        return value if isinstance(value, dict) else None


class Forwarder:
    """Opens a native call: the keys and chain it may use, the engine's run, and its ending in Google's shape."""

    def __init__(self, engine, transport, *, fallback_scope=(), max_attempts=1):
        self.engine = engine
        self.transport = transport
        self.fallback_scope = fallback_scope
        self.max_attempts = max_attempts
        self.pool = engine.pool  # the access check asks it whether an upload's pinned key is still held

    def chain_for(self, call):
        if call.action not in GENERATION_ACTIONS or not call.model or call.conversation:
            return [call.model]
        return self.engine.chain.along(call.model, self.fallback_scope)

    def open(self, call):
        """Return the first answer worth giving the client; nothing has been sent to it yet."""
        plan = Plan(self.chain_for(call), self._keys(call), self.max_attempts, retryable=answered)
        try:
            reply, _, attempts = self.engine.run(plan, self.transport, call)
        except GaveUp as ended:
            return self._ended(ended, plan)
        reply.attempts = attempts
        return reply

    def _keys(self, call):
        """The pinned key of an upload, the pool's keys, or the client's own (carried by the call)."""
        if call.key.pinned:
            # An upload's session belongs to the project of the key it was begun with: no other key goes on.
            keys = self.engine.pinned_key(call.key.pinned)
            if keys is None:
                raise NativeError(409, "ABORTED", "This upload was begun with a server key the proxy no longer "
                                  "holds; begin the upload again.", [])
            return keys
        if call.key.source != SERVER:
            return CALLERS_OWN
        try:
            return self.engine.server_keys()
        except NoKeys:
            raise NativeError(401, "UNAUTHENTICATED", "No API key was sent and the proxy has none configured "
                              "(GEMINI_API_KEY).", []) from None

    def _ended(self, ended, plan):
        """The last answer Gemini gave, when it gave one and nothing better came; else Google's error."""
        attempts, last = ended.attempts, ended.last
        if ended.reason in (EXHAUSTED, NO_TIME_TO_RETRY) and last is not None and last.reply is not None:
            last.reply.attempts = attempts
            return last.reply
        if ended.reason == DEADLINE:
            raise NativeError(504, "DEADLINE_EXCEEDED", "No answer from Gemini within the request deadline.",
                              attempts)
        if ended.reason == EXHAUSTED:
            retry_after = min(plan.keys.seconds_until_available(m or "*") for m in plan.chain)
            raise NativeError(429, "RESOURCE_EXHAUSTED", "Every server key is out of quota for this model; retry "
                              f"in {int(retry_after) + 1} s.", attempts)
        failure = ended.failure
        if failure.kind == TIMEOUT:
            raise NativeError(504, "DEADLINE_EXCEEDED", "Gemini did not answer in time.", attempts)
        if failure.kind == UNTRUSTED:
            log.error("%s", failure.message)
            raise NativeError(502, "UNAVAILABLE", f"{failure.message}.", attempts)
        raise NativeError(502, "UNAVAILABLE", f"Gemini is unreachable ({failure.message}).", attempts)

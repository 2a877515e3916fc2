"""Sending a native call upstream: pooled connections, and retry or fallback before the first byte."""
import json
import logging
import time
from dataclasses import dataclass, field
from functools import cached_property
from datetime import datetime, timezone
from typing import Optional

import urllib3

from ..upstream.failures import UNTRUSTED, from_google_error, untrusted_certificate, untrusted_message
from ..upstream.messages import AttemptRecord
from ..upstream.retry import backoff, delay_for
from ..upstream.session import upstream_pool
from ..wire import jsonbody
from ..wire.query import Query
from ..wire.routes import GENERATION_ACTIONS, Route
from .keys import SERVER, auth_headers

log = logging.getLogger(__name__)

RETRYABLE_STATUSES = {429, 500, 503, 504}


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

    @cached_property
    def payload(self):
        """The JSON body as a dict, parsed once and only when something asks (None if it is not one)."""
        try:
            value = jsonbody.loads(self.body) if self.body else None
        except jsonbody.BadJson:
            return None
        return value if isinstance(value, dict) else None


@dataclass
class Reply:
    """An upstream answer: live (streamed on) or already read (an error body)."""

    status: int
    headers: dict
    model: Optional[str]
    attempts: list = field(default_factory=list)
    live: object = None  # urllib3 response, unread
    body: bytes = b""
    key_id: Optional[str] = None
    key: Optional[str] = field(default=None, repr=False)  # the server key that answered (never stored)


class Forwarder:
    def __init__(self, base_url, pool, models, policy, *, connect_timeout, read_timeout, deadline, pool_size,
                 fallback_scope=(), max_attempts=1, quota_cooldown=60.0, sleep=time.sleep, clock=time.monotonic):
        self.base_url = base_url.rstrip("/")
        self.pool = pool
        self.models = list(models)
        self.policy = policy
        self.timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        self.deadline = deadline
        self.fallback_scope = fallback_scope
        self.max_attempts = max_attempts
        self.quota_cooldown = quota_cooldown  # seconds, when a 429 names no delay
        self.sleep = sleep
        self.clock = clock
        self.http = upstream_pool(self.base_url, pool_size)

    def chain_for(self, call):
        if call.action not in GENERATION_ACTIONS or not call.model:
            return [call.model]
        if "*" not in self.fallback_scope and call.model not in self.fallback_scope:
            return [call.model]
        return [call.model] + [m for m in self.models if m != call.model]

    def open(self, call):
        """Return the first answer worth giving the client; nothing has been sent to it yet."""
        deadline = self.clock() + self.deadline
        attempts, last = [], None
        chain = self.chain_for(call)
        for position, model in enumerate(chain):
            delays = backoff(self.policy)
            tries = 0
            while tries < self.max_attempts:
                key = None
                if call.key.pinned:
                    key = self._pinned_key(call, attempts)
                elif call.key.source == SERVER:
                    keys = self.pool.candidates(model or "*")
                    if not keys:
                        if not len(self.pool):
                            raise NativeError(401, "UNAUTHENTICATED", "No API key was sent and the proxy has none "
                                              "configured (GEMINI_API_KEY).", attempts)
                        break  # every server key rests for this model: the next model, if any
                    key = keys[0]
                reply = self._attempt(call, model, key, attempts, deadline)
                last = reply
                if reply.status not in RETRYABLE_STATUSES:
                    return reply
                failure = self._failure(reply)
                if reply.status == 429 and key is not None and not call.key.pinned:
                    self.pool.rest_for_quota(key, model or "*", failure, self.quota_cooldown)
                    continue  # another server key, at once; a resting key is never tried again
                tries += 1
                more_here = tries < self.max_attempts
                more_models = position + 1 < len(chain)
                if not (more_here or more_models):
                    return reply
                if reply.status == 429:
                    break  # the client's own key is out of quota for this model: fall back
                if more_here:
                    wait = delay_for(failure, next(delays), self.policy)
                    if self.clock() + wait >= deadline:
                        return reply
                    self.sleep(wait)
        if last is not None:
            return last
        retry_after = min(self.pool.seconds_until_available(m or "*") for m in chain)
        raise NativeError(429, "RESOURCE_EXHAUSTED", "Every server key is out of quota for this model; retry in "
                          f"{int(retry_after) + 1} s.", attempts)

    def _pinned_key(self, call, attempts):
        """The server key an upload was begun with: its session belongs to that key's project, so no other
        key may go on with it, and a rest for quota does not apply."""
        key = self.pool.key_with_id(call.key.pinned)
        if key is None:
            raise NativeError(409, "ABORTED", "This upload was begun with a server key the proxy no longer "
                              "holds; begin the upload again.", attempts)
        return key

    def _attempt(self, call, model, key, attempts, deadline):
        url = self.base_url + call.route.upstream(model if call.route.model == call.model else None)
        query = call.query.encoded(call.key.key if call.key.where == "query" else None)
        if query:
            url += "?" + query
        headers = dict(call.headers)
        headers.update(auth_headers(call.key, key))
        remaining = deadline - self.clock()
        if remaining <= 0:
            raise NativeError(504, "DEADLINE_EXCEEDED", "No answer from Gemini within the request deadline.",
                              attempts)
        timeout = urllib3.Timeout(connect=min(self.timeout.connect_timeout, remaining),
                                  read=min(self.timeout.read_timeout, remaining))
        started, started_at = self.clock(), datetime.now(timezone.utc).replace(tzinfo=None)
        key_id = self.pool.key_id(key) if key else None
        try:
            response = self.http.urlopen(call.method, url, body=call.body or None, headers=headers,
                                         preload_content=False, decode_content=False, redirect=False,
                                         timeout=timeout)
        except urllib3.exceptions.HTTPError as exc:
            # NewConnectionError subclasses ConnectTimeoutError, yet a refused connection is no timeout.
            timed_out = isinstance(exc, urllib3.exceptions.TimeoutError) and not isinstance(
                exc, urllib3.exceptions.NewConnectionError)
            untrusted = untrusted_certificate(exc)
            outcome = "timeout" if timed_out else (UNTRUSTED if untrusted else "transient")
            message = untrusted_message(untrusted) if untrusted else type(exc).__name__
            attempts.append(AttemptRecord(len(attempts) + 1, model or "-", key_id, outcome,
                                          (self.clock() - started) * 1000, started_at, error_message=message[:500]))
            if timed_out:
                raise NativeError(504, "DEADLINE_EXCEEDED", "Gemini did not answer in time.", attempts) from None
            if untrusted:
                log.error("%s", message)
                raise NativeError(502, "UNAVAILABLE", f"{message}.", attempts) from None
            raise NativeError(502, "UNAVAILABLE", f"Gemini is unreachable ({type(exc).__name__}).", attempts) from None
        reply = Reply(response.status, dict(response.headers), model, attempts, key_id=key_id, key=key)
        if response.status in RETRYABLE_STATUSES:
            reply.body = response.read()
            response.release_conn()
        else:
            reply.live = response
        outcome = "ok" if response.status < 400 else ("quota" if response.status == 429 else "error")
        attempts.append(AttemptRecord(len(attempts) + 1, model or "-", key_id, outcome,
                                      (self.clock() - started) * 1000, started_at, status_code=response.status))
        return reply

    @staticmethod
    def _failure(reply):
        try:
            payload = json.loads(reply.body)
            error = (payload[0] if isinstance(payload, list) else payload)["error"]
            return from_google_error(reply.status, error.get("details"), error.get("message", ""))
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            return from_google_error(reply.status, (), "")

"""The engine's transport for the pass-through: the client's call sent on as raw HTTP, its answer left unread.

The answer's body streams on to the client after the engine returns, so retry and fallback end with the
headers: a status worth another try is read here (it is never relayed half-way), any other is handed back
live."""
import json
from dataclasses import dataclass, field
from typing import Optional

import urllib3

from .failures import QUOTA, TIMEOUT, TRANSIENT, UNTRUSTED, UpstreamFailure, from_google_error
from .failures import untrusted_certificate, untrusted_message
from .session import upstream_pool

RETRYABLE_STATUSES = {429, 500, 503, 504}


@dataclass
class Reply:
    """An upstream answer: live (streamed on) or already read (an error body)."""

    status: int
    headers: dict
    model: Optional[str]
    attempts: list = field(default_factory=list)
    live: object = None  # http1pool.Http1Response (or h2pool.H2Response, urllib3's), unread
    body: bytes = b""
    key_id: Optional[str] = None
    key: Optional[str] = field(default=None, repr=False)  # the server key that answered (never stored)


class HttpTransport:
    """Sends a job that knows its method and body, and its target and headers for a model and key."""

    def __init__(self, base_url, *, connect_timeout, read_timeout, pool_size=None, http=None):
        self.base_url = base_url.rstrip("/")
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout  # seconds, per attempt
        self.timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)  # while the deadline is far
        # The worker's pool to Gemini, shared with the SDK's calls when given (session.upstream_pool).
        self.http = http if http is not None else upstream_pool(self.base_url, pool_size)

    def send(self, job, attempt):
        target, headers = job.prepared(attempt.model, attempt.key)
        seconds = attempt.seconds  # the per-attempt timeouts, cut to what is left of the deadline
        timeout = self.timeout if seconds >= self.read_timeout and seconds >= self.connect_timeout else \
            urllib3.Timeout(connect=min(self.connect_timeout, seconds), read=min(self.read_timeout, seconds))
        try:
            response = self.http.urlopen(job.method, self.base_url + target, body=job.body or None, headers=headers,
                                         preload_content=False, decode_content=False, redirect=False,
                                         timeout=timeout)
        except urllib3.exceptions.HTTPError as exc:
            raise _unreachable(exc) from None
        headers = getattr(response, "plain_headers", None)  # http1pool's, else what dict() makes of urllib3's
        reply = Reply(response.status, headers if headers is not None else dict(response.headers), attempt.model,
                      key_id=attempt.key_id, key=attempt.key)
        if response.status not in RETRYABLE_STATUSES:
            reply.live = response
            return reply
        reply.body = response.read()
        response.release_conn()
        failure = _failure(reply)
        failure.kind, failure.reply = (QUOTA if reply.status == 429 else TRANSIENT), reply
        raise failure

    @staticmethod
    def recorded(result):
        if isinstance(result, Reply):
            return {"outcome": "ok" if result.status < 400 else "error", "status_code": result.status}
        if result.reply is not None:
            return {"outcome": "quota" if result.status == 429 else "error", "status_code": result.status}
        return {"outcome": result.kind, "error_message": result.message[:500]}


def answered(failure):
    """The retry predicate for raw HTTP: only an answer worth another try is retried; a call that never
    reached Gemini, or went unanswered in time, ends there."""
    return failure.reply is not None


def _unreachable(exc):
    # NewConnectionError subclasses ConnectTimeoutError, yet a refused connection is no timeout.
    if isinstance(exc, urllib3.exceptions.TimeoutError) and not isinstance(exc, urllib3.exceptions.NewConnectionError):
        return UpstreamFailure(TIMEOUT, type(exc).__name__)
    reason = untrusted_certificate(exc)
    if reason:
        return UpstreamFailure(UNTRUSTED, untrusted_message(reason))
    return UpstreamFailure(TRANSIENT, type(exc).__name__)


def _failure(reply):
    try:
        payload = json.loads(reply.body)
        error = (payload[0] if isinstance(payload, list) else payload)["error"]
        return from_google_error(reply.status, error.get("details"), error.get("message", ""))
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return from_google_error(reply.status, (), "")

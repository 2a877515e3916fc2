"""Every request body read whole before the app runs: at most MAX_BODY_BYTES, within BODY_READ_SECONDS, well framed.

A body the server cannot take is answered, in the error shape of its API, by the app itself (so the
answer has its request id and its record): the middleware leaves the error in the environ and a
before_request hook raises it. Such an answer closes the connection, since the rest of that body is
either unreadable or not worth waiting for; a body that is merely too large is read to its end first
(within the deadline), because a client still sending when the server closes sees a reset, not the 413.
"""
import contextlib
import io
import time

from .errors import MalformedBody, PayloadTooLarge, RequestTimeout
from .requestctx import current_request

_ERROR = "gemini_proxy.body_error"
_BODY = "gemini_proxy.body"  # the body as read, for a view that wants it whole (as wsgi.input has it)
_READ_SIZE = 64 * 1024  # bytes per read
# A body over the limit is read to its end only up to four times the limit (64 MiB at least): past that,
# a client declaring gigabytes would hold a worker (a fast sender's reads never wait, so never yield)
# for the whole deadline. It then sees the connection close as it sends.
_DRAIN_FACTOR, _DRAIN_FLOOR = 4, 64 * 1024 * 1024


class _TooSlow(BaseException):
    """Raised into the greenlet reading a body when its deadline passes (BaseException: no handler eats it)."""


_timeout = None  # gevent's Timeout, once gevent is known to have patched the socket module (it stays so)


def _deadline(seconds):
    """Interrupts a read blocked past `seconds`. Only gevent can interrupt a blocked read; the body deadline
    holds under Gunicorn's gevent workers and is not enforced by servers without them (the dev server)."""
    global _timeout
    if _timeout is None:  # looked up until found, not on every request's body
        try:
            from gevent import Timeout, monkey
        except ImportError:  # pragma: no cover - gevent is a dependency
            return contextlib.nullcontext()
        if not monkey.is_module_patched("socket"):
            return contextlib.nullcontext()
        _timeout = Timeout
    return _timeout(max(seconds, 0.001), _TooSlow)


def _declared_length(environ):
    """Content-Length as a number; None for a chunked body (the server has already refused a bad one)."""
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return None
    try:
        return int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _force_close(start_response):
    # Gunicorn hands the app its Response's bound start_response: ask it to close the connection after
    # this answer (it then says `Connection: close`). Other servers keep their own counsel.
    close = getattr(getattr(start_response, "__self__", None), "force_close", None)
    if close is not None:
        close()


class _ThenDrain:
    """The app's answer, then the rest of the client's body, read and dropped before the connection closes."""

    def __init__(self, answer, drain):
        self.answer, self.drain = answer, drain

    def __iter__(self):
        return iter(self.answer)

    def close(self):
        try:
            if hasattr(self.answer, "close"):
                self.answer.close()
        finally:
            self.drain()


class BodyGuard:
    """WSGI middleware; the outermost, so it sees the server's own start_response."""

    def __init__(self, app, max_bytes, read_seconds, clock=None):
        self.app, self.max_bytes, self.read_seconds = app, max_bytes, read_seconds
        self.clock = clock or time.monotonic

    def __call__(self, environ, start_response):
        declared = _declared_length(environ)
        if declared == 0:
            return self.app(environ, start_response)
        started = self.clock()
        stream = environ["wsgi.input"]
        if declared is not None and declared > self.max_bytes:
            body, error = b"", self._too_large(declared)
        else:
            body, error = self._read(stream, declared, started)
        environ["wsgi.input"] = io.BytesIO(body)
        environ[_BODY] = body
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)  # what the app reads now has a length
        if error is None:
            return self.app(environ, start_response)
        environ[_ERROR] = error
        _force_close(start_response)
        answer = self.app(environ, start_response)
        if isinstance(error, PayloadTooLarge):
            return _ThenDrain(answer, lambda: self._drain(stream, started))
        return answer

    def _too_large(self, size=None):
        said = f"{size} bytes; " if size else "over the limit; "
        return PayloadTooLarge(f"The request body is {said}this server accepts at most {self.max_bytes} bytes.")

    def _read(self, stream, declared, started):
        parts, size = [], 0
        try:
            with _deadline(self.read_seconds - (self.clock() - started)):
                while chunk := stream.read(_READ_SIZE):
                    size += len(chunk)
                    if size > self.max_bytes:
                        return b"", self._too_large()
                    parts.append(chunk)
        except _TooSlow:
            return b"", RequestTimeout(f"The request body did not arrive within {self.read_seconds:g} seconds.")
        except Exception:  # the server's reader found the framing broken (a bad chunk), or the client left
            return b"", MalformedBody("The request body is malformed: its chunked encoding is broken or it was cut "
                                      "short.")
        if declared is not None and size < declared:
            return b"", MalformedBody(f"The request body ended after {size} of its {declared} bytes.")
        return b"".join(parts), None

    def _drain(self, stream, started):
        # Bounded by the same deadline as reading, and by size: a client still sending after either is cut off.
        budget = max(_DRAIN_FACTOR * self.max_bytes, _DRAIN_FLOOR)
        with contextlib.suppress(_TooSlow, Exception), _deadline(self.read_seconds - (self.clock() - started)):
            while budget > 0 and (chunk := stream.read(_READ_SIZE)):
                budget -= len(chunk)


def refuse_unread_body():
    """A before_request hook, after authentication (so the refusal is recorded as the caller's): the body
    error the middleware found, if any."""
    error = current_request().environ.get(_ERROR)
    if error is not None:
        raise error


def whole_body(environ):
    """The body the middleware read, as bytes (what wsgi.input holds), or None when it read none (none was
    declared): the same bytes as request.get_data, without Werkzeug's stream around them."""
    return environ.get(_BODY)

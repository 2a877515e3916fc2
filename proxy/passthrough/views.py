"""The routes under /v1beta and /v1: forward, stream back chunk by chunk, record when done."""
import json
import logging
import time

from flask import Blueprint, Response, current_app, g, request

from ..storage.exchanges import record_exchange
from .capture import Capture
from ..errors import ModelNotAllowed, PromptTooLong
from .capture import iter_json_objects
from .forwarder import NativeCall, NativeError, native_route, parse_model_path
from .headers import client_headers, query_without_key, upstream_headers
from .keys import SERVER, KeyChoice, choose_key

log = logging.getLogger(__name__)

bp = Blueprint("passthrough", __name__)
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
_READ_SIZE = 64 * 1024  # bytes per read of a body that is not chunked


class Stream:
    """What one exchange carried, filled in as the body flows through."""

    def __init__(self, cap):
        self.capture = Capture(cap)
        self.ttfb_ms = None
        self.finished = False
        self.upstream_broke = False


def _call_from_request(version, path):
    model, action = parse_model_path(path)
    return NativeCall(
        method=request.method,
        version=version,
        path=path,
        query=query_without_key(request.query_string),
        body=request.get_data(cache=False),
        headers=upstream_headers(request.headers),
        # A proxy key sent where Gemini expects its own is swapped for a server key.
        key=KeyChoice(SERVER) if g.get("proxy_key_slot") else choose_key(request),
        client_headers=dict(request.headers),
        model=model,
        action=action,
    )


@bp.route("/<any(v1beta, v1):version>/<path:path>", methods=_METHODS)
def forward(version, path):
    config = current_app.config
    call = _call_from_request(version, path)
    g.model_requested = call.model
    _check_limits(call, config)
    stream = Stream(config["LOG_BODY_MAX_BYTES"] if config["LOG_BODIES"] else 0)
    app = current_app._get_current_object()
    context = {"request_id": g.request_id, "started_at": g.started_at, "elapsed_ms": g.elapsed_ms,
               "route": native_route(version, path), "client_id": g.client.id if g.get("client") else None}
    g.native_recorded = True  # recorded when the response closes, not by the after_request hook
    try:
        reply = current_app.extensions["forwarder"].open(call)
    except NativeError as error:
        return _failed(error, app, context, call, stream)

    started = time.perf_counter()
    body = _relay(reply, stream, started, g.elapsed_ms)
    response = Response(body, status=reply.status, headers=client_headers(reply.headers))
    length = reply.headers.get("Content-Length") or reply.headers.get("content-length")
    if length and not reply.headers.get("Transfer-Encoding"):
        response.headers["Content-Length"] = length
    if reply.model:
        response.headers["X-Gemini-Model"] = reply.model
    response.headers["X-Accel-Buffering"] = "no"  # nginx must pass streams on as they come
    response.call_on_close(lambda: record_exchange(app, context, call, reply, stream, None))
    return response


def _prompt_chars(body):
    try:
        payload = next(iter_json_objects(body.decode("utf-8", errors="replace")), {})
    except ValueError:
        return 0
    contents = payload.get("contents") or []
    return sum(len(part.get("text") or "") for content in contents if isinstance(content, dict)
               for part in content.get("parts") or [] if isinstance(part, dict))


def _check_limits(call, config):
    """The operator's input limits, checked before any upstream call."""
    allowed = config["ALLOWED_MODELS"]
    if allowed and call.model and call.model not in allowed:
        raise ModelNotAllowed(f"Model {call.model!r} is not allowed here; choose one of: {', '.join(allowed)}.")
    limit = config["NATIVE_MAX_PROMPT_CHARS"]
    if limit and call.body and _prompt_chars(call.body) > limit:
        raise PromptTooLong(f"The prompt is longer than {limit} characters.")


def _failed(error, app, context, call, stream):
    """No upstream answer at all: Google's error shape, recorded like any exchange."""
    response = Response(json.dumps(error.body()), status=error.status, mimetype="application/json")
    stream.capture.add(response.get_data())
    stream.finished = True
    response.call_on_close(lambda: record_exchange(app, context, call, None, stream, error))
    return response


def _relay(reply, stream, started, elapsed_ms):
    """Yield the upstream body as it arrives, capturing a copy; mark how it ended."""
    if reply.live is None:
        stream.ttfb_ms = elapsed_ms()
        stream.capture.add(reply.body)
        yield reply.body
        stream.finished = True
        return
    upstream = reply.live
    chunks = upstream.read_chunked(decode_content=False) if upstream.chunked else \
        upstream.stream(_READ_SIZE, decode_content=False)
    try:
        for chunk in chunks:
            if not chunk:
                continue
            if stream.ttfb_ms is None:
                stream.ttfb_ms = elapsed_ms()
            stream.capture.add(chunk)
            yield chunk
        stream.finished = True
    except Exception:
        # Upstream broke off mid-body: the client's stream ends short too, so it cannot
        # mistake a partial answer for a whole one.
        stream.upstream_broke = True
        log.warning("upstream broke off after %d bytes", stream.capture.total, exc_info=True)
        raise
    finally:
        if stream.finished:
            upstream.release_conn()
        else:
            upstream.close()  # a half-read connection must not go back to the pool

"""The routes under /v1beta and /v1: forward, stream back chunk by chunk, record when done."""
import json
import logging
import time

from flask import Blueprint, Response, current_app, g, request
from werkzeug.exceptions import HTTPException

from ..storage.exchanges import record_exchange
from .capture import Capture
from .forwarder import NativeCall, NativeError, parse_model_path
from .headers import client_headers, query_without_key, upstream_headers
from .keys import choose_key

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
        key=choose_key(request),
        client_headers=dict(request.headers),
        model=model,
        action=action,
    )


@bp.route("/<any(v1beta, v1):version>/<path:path>", methods=_METHODS)
def forward(version, path):
    config = current_app.config
    call = _call_from_request(version, path)
    g.model_requested = call.model
    stream = Stream(config["LOG_BODY_MAX_BYTES"] if config["LOG_BODIES"] else 0)
    app = current_app._get_current_object()
    context = {"request_id": g.request_id, "started_at": g.started_at, "elapsed_ms": g.elapsed_ms,
               "route": f"/{version}/" + (f"models/{{model}}:{call.action}" if call.model else path.split("/")[0])}
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


@bp.errorhandler(HTTPException)
def _google_shaped(exc):
    """Errors on the native path keep Google's shape, so SDKs raise what they expect."""
    names = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 405: "INVALID_ARGUMENT", 413: "INVALID_ARGUMENT"}
    body = {"error": {"code": exc.code, "message": exc.description, "status": names.get(exc.code, "UNKNOWN")}}
    return Response(json.dumps(body), status=exc.code, mimetype="application/json")

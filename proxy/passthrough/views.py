"""The routes under /v1beta and /v1 (and /upload/...): forward, stream back chunk by chunk, record when done."""
import json
import logging

from flask import Blueprint, Response, current_app, g, request

from ..cache.answers import fold_body, replay
from ..cache.policy import OFF
from ..errors import ModelNotAllowed, PromptTooLong
from ..storage.exchanges import record_exchange
from . import uploads
from .capture import Capture
from .forwarder import (
    GENERATION_ACTIONS, NativeCall, NativeError, Reply, native_route, openai_model, parse_model_path,
)
from .headers import client_headers, query_without_key, upstream_headers
from .keys import CLIENT, SERVER, KeyChoice, choose_key

log = logging.getLogger(__name__)

bp = Blueprint("passthrough", __name__)
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
_READ_SIZE = 64 * 1024  # bytes per read of a body that is not chunked


class Stream:
    """What one exchange carried, filled in as the body flows through."""

    def __init__(self, cap, cache_limit=0):
        self.capture = Capture(cap)
        self.whole = [] if cache_limit else None  # the full body, kept only for the cache, and bounded
        self.whole_bytes = 0
        self.cache_limit = cache_limit
        self.ttfb_ms = None
        self.finished = False
        self.upstream_broke = False


def _call_from_request(incoming, state, version, path, prefix):
    model, action = parse_model_path(path)
    query = query_without_key(incoming.query_string)
    # A proxy key sent where Gemini expects its own is swapped for a server key.
    key = KeyChoice(SERVER) if state.get("proxy_key_slot") else choose_key(incoming)
    if prefix:
        query, pinned = uploads.pinned_key(query)
        if pinned == uploads.OWN and key.source == SERVER:
            key = KeyChoice(CLIENT)  # begun with the client's own key, which this chunk does not carry: none
        elif pinned and pinned != uploads.OWN:
            key = KeyChoice(SERVER, pinned=pinned)
    call = NativeCall(
        method=incoming.method,
        version=version,
        path=path,
        query=query,
        body=incoming.get_data(cache=False),
        headers=upstream_headers(incoming.headers),
        key=key,
        client_headers=dict(incoming.headers),
        model=model,
        action=action,
        prefix=prefix,
    )
    if call.openai:
        call.model = openai_model(call.payload)  # so ALLOWED_MODELS, limits and records see it
    return call


@bp.route("/upload/<any(v1beta, v1):version>/<path:path>", methods=_METHODS)
def upload(version, path):
    return forward(version, path, uploads.PREFIX)


@bp.route("/<any(v1beta, v1):version>/<path:path>", methods=_METHODS)
def forward(version, path, prefix=""):
    # The objects behind Flask's proxies, looked up once: this is the pass-through's every request.
    app, state, incoming = current_app._get_current_object(), g._get_current_object(), request._get_current_object()
    config = app.config
    call = _call_from_request(incoming, state, version, path, prefix)
    state.model_requested = call.model
    _check_limits(call, config)
    decision, key, cached = _consult_cache(call)
    capture = config["LOG_BODY_MAX_BYTES"] if config["LOG_BODIES"] and not (
        prefix and uploads.carries_file(incoming)) else 0
    stream = Stream(capture, config["CACHE_MAX_BODY_BYTES"] if decision.write and not cached else 0)
    context = {"request_id": state.request_id, "started_at": state.started_at, "elapsed_ms": state.elapsed_ms,
               "route": native_route(version, path, prefix),
               "client_id": state.client.id if state.get("client") else None,
               "cache_status": state.get("cache_status")}
    state.native_recorded = True  # recorded when the response closes, not by the after_request hook
    if cached is not None:
        body, content_type = replay(cached, call.streaming, "alt=sse" in call.query)
        reply = Reply(200, {"Content-Type": content_type, "Content-Length": str(len(body))}, call.model, [], body=body)
    else:
        try:
            reply = app.extensions["forwarder"].open(call)
        except NativeError as error:
            return _failed(error, app, context, call, stream)

    body = _relay(reply, stream, state.elapsed_ms)
    headers = client_headers(reply.headers)
    if prefix:
        # The chunks must come through the proxy too, and go on with the key the upload began with.
        server_key = reply.key if call.key.source == SERVER else None
        headers = uploads.pointed_here(headers, incoming.url_root, server_key, reply.key_id)
    response = Response(body, status=reply.status, headers=headers)
    length = reply.headers.get("Content-Length") or reply.headers.get("content-length")
    if length and not reply.headers.get("Transfer-Encoding"):
        response.headers["Content-Length"] = length
    if reply.model:
        response.headers["X-Gemini-Model"] = reply.model
    response.headers["X-Accel-Buffering"] = "no"  # nginx must pass streams on as they come
    response.call_on_close(lambda: record_exchange(app, context, call, reply, stream, None))
    if stream.whole is not None:
        response.call_on_close(lambda: _keep_in_cache(app, decision, key, call, reply, stream))
    return response


def _consult_cache(call):
    """(decision, key, cached answer) for a generation call; the cache is off for anything else."""
    cache = current_app.extensions["cache"]
    if not cache.config["CACHE_ENABLED"] or call.action not in GENERATION_ACTIONS or not call.model \
            or call.method != "POST" or call.payload is None:
        return OFF, None, None
    decision = cache.decision(request.headers, call.payload)
    key, cached = cache.lookup(decision, call.model, call.payload)
    if decision.used:
        g.cache_status = "HIT" if cached is not None else "MISS"
    return decision, key, cached


def _keep_in_cache(app, decision, key, call, reply, stream):
    """After the client has its answer: keep it if it came whole, unaltered, from the model asked."""
    if reply.status != 200 or not stream.finished or stream.whole is None:
        return
    with app.app_context():
        answer = fold_body(b"".join(stream.whole))
        app.extensions["cache"].keep(decision, key, call.model, reply.model, answer)


def _prompt_chars(payload):
    contents = (payload or {}).get("contents") or []
    chars = sum(len(part.get("text") or "") for content in contents if isinstance(content, dict)
                for part in content.get("parts") or [] if isinstance(part, dict))
    for message in (payload or {}).get("messages") or []:  # the OpenAI-compatible endpoint
        content = message.get("content") if isinstance(message, dict) else None
        parts = [{"text": content}] if isinstance(content, str) else content if isinstance(content, list) else []
        chars += sum(len(part.get("text") or "") for part in parts if isinstance(part, dict))
    return chars


def _check_limits(call, config):
    """The operator's input limits, checked before any upstream call."""
    allowed = config["ALLOWED_MODELS"]
    if allowed and call.model and call.model not in allowed:
        raise ModelNotAllowed(f"Model {call.model!r} is not allowed here; choose one of: {', '.join(allowed)}.")
    limit = config["NATIVE_MAX_PROMPT_CHARS"]
    if limit and _prompt_chars(call.payload) > limit:
        raise PromptTooLong(f"The prompt is longer than {limit} characters.")


def _failed(error, app, context, call, stream):
    """No upstream answer at all: Google's error shape, recorded like any exchange."""
    response = Response(json.dumps(error.body()), status=error.status, mimetype="application/json")
    stream.capture.add(response.get_data())
    stream.finished = True
    response.call_on_close(lambda: record_exchange(app, context, call, None, stream, error))
    return response


def _keep_whole(stream, chunk):
    if stream.whole is None:
        return
    stream.whole_bytes += len(chunk)
    if stream.whole_bytes > stream.cache_limit:
        stream.whole = None  # too large to cache; forwarding goes on untouched
    else:
        stream.whole.append(chunk)


def _relay(reply, stream, elapsed_ms):
    """Yield the upstream body as it arrives, capturing a copy; mark how it ended."""
    if reply.live is None:
        stream.ttfb_ms = elapsed_ms()
        stream.capture.add(reply.body)
        _keep_whole(stream, reply.body)
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
            _keep_whole(stream, chunk)
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

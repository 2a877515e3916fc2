"""The routes under /v1beta and /v1 (and /upload/...): forward, stream back chunk by chunk, record when done."""
import json
import logging

from flask import Blueprint, Response

from ..cache.answers import fold_body, replay
from ..cache.policy import OFF
from ..access.clients import hash_key
from ..errors import InvalidRequest, ModelNotAllowedForKey, NotFound, PromptTooLong
from ..request_body import whole_body
from ..requestctx import current as current_state, current_application, current_request
from ..storage.exchanges import record_exchange
from ..upstream.chain import PERMITTED, client_models
from ..wire import jsonbody, openai_errors, references, routes, upload_urls
from ..wire.routes import GENERATION_ACTIONS
from . import stateful, uploads
from .capture import Capture
from .forwarder import NativeCall, NativeError, Reply
from .headers import RelayedResponse, client_headers, response_headers, sent_headers
from .keys import CLIENT, SERVER, KeyChoice

log = logging.getLogger(__name__)

bp = Blueprint("passthrough", __name__)
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
_READ_SIZE = 64 * 1024  # bytes per read of a body that is not chunked
# Where a POST names its model in the body rather than the path; and the calls that must name one.
BODY_MODEL_COLLECTIONS = frozenset({routes.OPENAI, "cachedContents", "interactions"})
OPENAI_CHAT = ("openai", "chat", "completions")  # a generation in OpenAI's shape, its tool calls signed too
NAMES_MODEL = frozenset({OPENAI_CHAT, ("cachedContents",), ("interactions",)})
# The headers of an answer the proxy sets itself (so upstream's are not passed on beside them), lower case.
_ALWAYS_SET_HERE = frozenset({"x-accel-buffering"})
_SET_HERE = _ALWAYS_SET_HERE | {"x-gemini-model"}


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
        self.signatures = None  # a SignatureScanner when the answer's thought signatures must be remembered


def _key_choice(state, native):
    """Which key the call goes on with: the client's own Gemini key, or the pool's (pinned for an upload)."""
    presented = native.presented.gemini if not state.proxy_key_slot else None
    own = KeyChoice(CLIENT, presented[1], presented[0]) if presented else None
    upload = state.upload
    if upload is not None:
        if upload.pin == upload_urls.OWN:
            return own or KeyChoice(CLIENT)  # begun with the client's own key, which this chunk may not carry
        return KeyChoice(SERVER, pinned=upload.pin)
    return own or KeyChoice(SERVER)


def _body_model(payload):
    """The model a request names in its body (OpenAI's, a cache's, an interaction's), as paths name it."""
    model = (payload or {}).get("model")
    if model is None:
        return None
    if not routes.valid_model_name(model):
        raise InvalidRequest("The body's model is not a model name of Gemini's API.")
    return model.removeprefix("models/")


def _token_model(payload):
    """The model a Live ephemeral token locks (its bidiGenerateContentSetup's, in either JSON spelling):
    its sessions run on that model whatever their setup names, so it is checked when the token is minted."""
    setup = (payload or {}).get("bidiGenerateContentSetup", (payload or {}).get("bidi_generate_content_setup"))
    setup = setup.get("setup", setup) if isinstance(setup, dict) else None
    return _body_model(setup) if isinstance(setup, dict) else None


def _call_from_request(incoming, state, native):
    route = native.route
    environ = incoming.environ
    body = whole_body(environ)
    if body is None:  # a body the guard did not read (none was declared)
        body = incoming.get_data(cache=False)
    sent, forwarded = sent_headers(environ)  # read once: the log's copy, and what goes upstream
    call = NativeCall(
        method=incoming.method,
        route=route,
        query=native.query.without(upload_urls.PARAMETER),
        body=body,
        headers=forwarded,
        key=_key_choice(state, native),
        client_headers=sent,
        model=route.model,
    )
    if body and not route.upload:
        try:
            # Parsed once for all who read it; refused here, with Google's message, not by Gemini or later.
            call.payload = call.parsed_body()
        except jsonbody.BadJson as exc:
            raise InvalidRequest(str(exc)) from None
    if route.collection in BODY_MODEL_COLLECTIONS and incoming.method == "POST":
        call.model = _body_model(call.payload)  # so ALLOWED_MODELS, limits and records see it
        if call.model is None and route.segments in NAMES_MODEL:
            # Nothing named (an interaction's agent, say) would pass every allowlist unchecked.
            if client_models() is not None:
                raise ModelNotAllowedForKey("Name the model in the body's `model`: this API key may use only "
                                            f"{', '.join(client_models())}.")
            if current_application().extensions["engine"].chain.allowed:
                raise InvalidRequest("Name the model in the body's `model`: this proxy allows only some models.")
    elif route.segments == ("auth_tokens",) and incoming.method == "POST":
        call.model = _token_model(call.payload)
    return call


@bp.route("/<any(upload, download):prefix>/<any(v1beta, v1, v1alpha):version>/<path:path>", methods=_METHODS)
@bp.route("/<any(v1beta, v1, v1alpha):version>/<path:path>", methods=_METHODS)
def forward(version, path, prefix=None):
    # The objects behind Flask's proxies, looked up once: this is the pass-through's every request.
    app, state, incoming = current_application(), current_state(), current_request()
    native = state.native
    if native is None:  # only a path the access check parsed is forwarded
        raise NotFound("The path is not one of Gemini's API.")
    config = app.config
    call = _call_from_request(incoming, state, native)
    upload = call.route.upload
    state.model_requested = call.model
    _check_limits(call, app)
    owners = app.extensions["resource_owners"]
    stateful.pin(call, state, owners, app.extensions["engine"].pool)
    decision, key, cached = _consult_cache(state, call)
    capture = config["LOG_BODY_MAX_BYTES"] if config["LOG_BODIES"] and not (
        upload and uploads.carries_file(incoming)) else 0
    stream = Stream(capture, config["CACHE_MAX_BODY_BYTES"] if decision.write and not cached else 0)
    state.native_recorded = True  # recorded when the response closes, not by the after_request hook
    forwarder = app.extensions["forwarder"]
    try:
        if cached is not None:
            body, content_type = replay(cached, call.streaming, call.query.sse)
            reply = Reply(200, {"Content-Type": content_type, "Content-Length": str(len(body))}, call.model, [],
                          body=body)
        elif call.key.source == SERVER and references.listing(call.route, call.method) is not None:
            reply = _listed(call, state, owners, forwarder)
        else:
            reply = forwarder.open(call)
            _learn_from(call, reply, state, owners)
    except NativeError as error:
        return _failed(error, app, state, call, stream)
    if call.openai and reply.status >= 400:
        return _openai_failed(app, state, call, reply, stream)
    if (call.route.generation or call.route.segments == OPENAI_CHAT) and call.key.source == SERVER and \
            len(forwarder.pool) > 1:
        stream.signatures = references.SignatureScanner()  # the next turn must come back to this key
    body = _relay(reply, stream, state.elapsed_ms)
    upstream = reply.headers
    headers = client_headers(upstream, _SET_HERE if reply.model else _ALWAYS_SET_HERE)
    if upload:
        headers = _upload_headers(app, state, call, reply, headers, incoming.url_root)
    length = upstream.get("Content-Length") or upstream.get("content-length")
    if length and not upstream.get("Transfer-Encoding"):
        headers.append(("Content-Length", length))
    if reply.model:
        headers.append(("X-Gemini-Model", reply.model))
    headers.append(("X-Accel-Buffering", "no"))  # nginx must pass streams on as they come
    response = RelayedResponse(body, status=reply.status, headers=response_headers(headers))
    response.call_on_close(lambda: record_exchange(app, state, call, reply, stream, None))
    if stream.signatures is not None:
        response.call_on_close(lambda: _remember_signatures(app, state, call, reply, stream))
    if stream.whole is not None:
        response.call_on_close(lambda: _keep_in_cache(app, decision, key, call, reply, stream))
    return response


def _learn_from(call, reply, state, owners):
    """Read what a stateful call made, deleted or handed out, before the client can name it anywhere."""
    if call.key.source != SERVER or reply.status >= 300:
        return
    if call.method == "DELETE":
        stateful.after(call, reply, None, state, owners)
    elif stateful.reads_answer(call, reply):
        body, whole = stateful.read_whole(reply)
        reply.body = body
        if whole:
            reply.live = None
            stateful.after(call, reply, body, state, owners)


def _listed(call, state, owners, forwarder):
    """A list of stateful resources: the caller's own, over the keys that hold them."""
    status, answer, reply = stateful.list_page(call, state, owners, forwarder.open)
    if answer is None:
        return reply
    body = json.dumps(answer).encode()
    return Reply(status, {"Content-Type": "application/json; charset=UTF-8", "Content-Length": str(len(body))},
                 call.model, reply.attempts if reply is not None else [], body=body,
                 key_id=reply.key_id if reply is not None else None)


def _openai_failed(app, state, call, reply, stream):
    """Gemini's error on its OpenAI-compatible endpoint, in OpenAI's shape; the record keeps Google's."""
    original = reply.body
    if reply.live is not None:
        original += reply.live.read(1024 * 1024, decode_content=False) or b""
        reply.live.release_conn()
        reply.live = None
    stream.ttfb_ms = state.elapsed_ms()
    stream.capture.add(original)
    stream.finished = True
    response = Response(openai_errors.encoded(reply.status, original), status=reply.status,
                        mimetype="application/json")
    if reply.model:
        response.headers["X-Gemini-Model"] = reply.model
    response.call_on_close(lambda: record_exchange(app, state, call, reply, stream, None))
    return response


def _remember_signatures(app, state, call, reply, stream):
    with app.app_context():
        stateful.record_signatures(stream.signatures, reply, state, app.extensions["resource_owners"], call.model)


def _upload_headers(app, state, call, reply, headers, url_root):
    """The chunks must come through the proxy too, on the key the upload began with, for its client;
    and once an upload has ended, the URL it was given opens nothing."""
    if state.upload is not None and uploads.finished(headers):
        app.extensions["ended_uploads"].end(call.query.get("upload_id"))
    client = state.client
    presented = state.native.presented
    own_secret = hash_key(presented.api_key or presented.gemini[1]) if client and (
        presented.api_key or presented.gemini) else None
    return uploads.pointed_here(
        headers, url_root, server_key=reply.key if call.key.source == SERVER else None, key_id=reply.key_id,
        client_id=client.id if client else None, client_secret=own_secret,
        seconds=app.config["UPLOAD_URL_SECONDS"])


def _consult_cache(state, call):
    """(decision, key, cached answer) for a generation call; the cache is off for anything else."""
    cache = current_application().extensions["cache"]
    if not cache.config["CACHE_ENABLED"] or call.action not in GENERATION_ACTIONS or not call.model \
            or call.method != "POST" or call.payload is None:
        return OFF, None, None
    decision = cache.decision(current_request().headers, call.payload)
    key, cached = cache.lookup(decision, call.model, call.payload)
    if decision.used:
        state.cache_status = "HIT" if cached is not None else "MISS"
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


def _check_limits(call, app):
    """The operator's input limits, checked before any upstream call."""
    app.extensions["engine"].chain.require_allowed(call.model, PERMITTED)
    limit = app.config["NATIVE_MAX_PROMPT_CHARS"]
    if limit and _prompt_chars(call.payload) > limit:
        raise PromptTooLong(f"The prompt is longer than {limit} characters.")


def _failed(error, app, state, call, stream):
    """No upstream answer at all: Google's error shape, recorded like any exchange."""
    body = json.dumps(error.body()).encode()
    stream.capture.add(body)
    if call.openai:
        body = openai_errors.encoded(error.status, body)
    response = Response(body, status=error.status, mimetype="application/json")
    stream.finished = True
    response.call_on_close(lambda: record_exchange(app, state, call, None, stream, error))
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
        if stream.signatures is not None:
            stream.signatures.feed(reply.body)
        yield reply.body
        stream.finished = True
        return
    upstream, scanner = reply.live, stream.signatures
    if reply.body:  # the start of an answer read to learn from it, and too long to hold whole
        stream.ttfb_ms = elapsed_ms()
        stream.capture.add(reply.body)
        yield reply.body
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
            if scanner is not None:
                scanner.feed(chunk)
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

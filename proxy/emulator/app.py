"""The emulator's HTTP routes: Gemini's REST API under /v1beta and /v1 (files: files.py; the OpenAI-compatible
endpoint: openai_compat.py), and a control API."""
import json
import time

from flask import Flask, Response, jsonify, request

from . import batches, generation, replies
from .caches import register_caches
from .control import register_control
from .batches import register_batches
from .files import register_files
from .reading import BadRequest, Refused
from .interactions import register_interactions
from .live import register_live
from .openai_compat import register_openai
from .operations import register_operations
from .state import EmulatorState
from .stores import register_stores

_API_VERSIONS = ("v1beta", "v1")


class AbsoluteForm:
    """WSGI middleware: a request whose target is a whole URL, as clients send to an HTTP proxy, is served
    as its path (RFC 9112 has servers accept that form), so the emulator can stand in for the operator's
    proxy; the Host header still names where the client meant to go."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        target = environ.get("PATH_INFO", "")
        if target.startswith(("http://", "https://")):
            environ["PATH_INFO"] = "/" + target.split("://", 1)[1].partition("/")[2]
        return self.app(environ, start_response)


def create_emulator(valid_keys=None, latency_ms=0.0):
    app = Flask(__name__)
    state = EmulatorState(valid_keys, latency_ms)
    app.extensions["emulator"] = state
    app.wsgi_app = AbsoluteForm(app.wsgi_app)

    def google_error(status, body, as_array=False):
        payload = [body] if as_array else body
        return Response(json.dumps(payload), status=status, mimetype="application/json")

    @app.get("/<version>/models")
    def list_models(version):
        if version not in _API_VERSIONS:
            return google_error(404, replies.error_body(404, f"Unknown API version {version}."))
        refusal = replies.key_refusal(_api_key(), state.valid_keys)
        if refusal is not None:
            return google_error(*refusal)
        names = sorted(replies.MODELS)
        size = request.args.get("pageSize", type=int) or 50
        start = int(request.args.get("pageToken") or 0)
        body = {"models": [replies.model_resource(name) for name in names[start:start + size]]}
        if start + size < len(names):
            body["nextPageToken"] = str(start + size)
        return jsonify(body)

    @app.route("/<version>/models/<path:target>", methods=["GET", "POST"])
    def model_call(version, target):
        model, _, action = target.partition(":")
        key = _api_key()
        body = request.get_json(force=True, silent=True)
        state.enter({"model": model, "action": action or request.method, "key": key, "query": dict(request.args),
                     "headers": {k.lower(): v for k, v in request.headers.items()}, "body": body,
                     "time": time.time()})
        try:
            response = serve(version, model, action, key, body)
        except Exception:
            state.leave()
            raise
        if response.is_streamed:
            response.response = _leave_after(response.response, state)
        else:
            state.leave()
        return response

    def serve(version, model, action, key, body):
        streaming = action == "streamGenerateContent"
        as_array = streaming and not generation.sse()
        if version not in _API_VERSIONS:
            return google_error(404, replies.error_body(404, f"Unknown API version {version}."), as_array)
        refusal = replies.key_refusal(key, state.valid_keys)
        if refusal is not None:
            return google_error(*refusal, as_array)
        if model not in replies.MODELS:
            return google_error(404, replies.fault_error(404, model), as_array)
        if request.method == "GET" and not action:
            return jsonify(replies.model_resource(model))
        if replies.live_only(model):
            return google_error(404, replies.fault_error(404, model), as_array)
        if request.method != "POST" or not isinstance(body, dict):
            return google_error(400, replies.error_body(400, "Invalid JSON payload received."), as_array)
        handler = generation.ACTIONS.get(action) or batches.ACTIONS.get(action)
        if handler is None:
            return google_error(404, replies.error_body(404, f"Method {action} not found for models/{model}."))
        try:
            fault = state.take_fault(model, key, action)
            response = _fault_response(fault, model, streaming)
            if response is None:
                time.sleep(state.latency_for(model))
                response = generation.stream(state, model, body, fault, key) if streaming else handler(
                    state, model, body, key=key)
        except BadRequest as exc:
            response = google_error(400, replies.error_body(400, str(exc)), as_array)
        except Refused as exc:
            response = google_error(exc.status, replies.error_body(exc.status, str(exc)), as_array)
        return response

    register_control(app, state)
    register_files(app, state, _API_VERSIONS, _api_key, google_error)
    register_openai(app, state, _API_VERSIONS, _api_key, generation.chunks, generation.embedding_values)
    register_caches(app, state, _API_VERSIONS, google_error)
    register_batches(app, state, _API_VERSIONS, google_error)
    register_operations(app, state, _API_VERSIONS, google_error)
    register_stores(app, state, _API_VERSIONS, google_error)
    register_interactions(app, state, _API_VERSIONS, google_error)
    register_live(app, state)

    @app.errorhandler(404)
    def unknown_path(_error):
        return google_error(404, replies.error_body(404, f"Unknown path {request.path}."))

    return app


def _api_key():
    bearer = request.headers.get("Authorization", "")
    return (request.headers.get("x-goog-api-key") or request.args.get("key")
            or (bearer[7:].strip() if bearer.lower().startswith("bearer ") else ""))



def _leave_after(chunks, state):
    try:
        yield from chunks
    finally:
        state.leave()


def _fault_response(fault, model, streaming):
    """The error a fault answers with, or None to answer normally (perhaps slowly, or cut short)."""
    if fault is None:
        return None
    mode = fault.get("mode", "error")
    if mode in ("cut", "stall") and streaming:
        return None
    if mode == "slow":
        time.sleep(float(fault.get("seconds", 5)))
        return None
    if mode == "malformed":
        return Response('{"candidates": [{"content": ', mimetype="application/json")
    status = int(fault.get("status", 503))
    if status == 429:
        body = replies.quota_error(model, fault.get("retry_delay", "20s"), bool(fault.get("per_day")))
    else:
        body = replies.fault_error(status, model, fault.get("retry_delay"))
    payload = [body] if streaming and not generation.sse() else body
    return Response(json.dumps(payload), status=status, mimetype="application/json")

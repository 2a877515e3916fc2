"""The emulator's HTTP routes: Gemini's REST API under /v1beta and /v1 (files: files.py; the OpenAI-compatible
endpoint: openai_compat.py), and a control API."""
import json
import time

from flask import Flask, Response, jsonify, request

from . import replies
from .control import register_control
from .files import register_files
from .reading import BadRequest, field, read_generation, texts
from .openai_compat import register_openai
from .state import EmulatorState

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
        as_array = streaming and not _sse()
        if version not in _API_VERSIONS:
            return google_error(404, replies.error_body(404, f"Unknown API version {version}."), as_array)
        refusal = replies.key_refusal(key, state.valid_keys)
        if refusal is not None:
            return google_error(*refusal, as_array)
        if model not in replies.MODELS:
            return google_error(404, replies.fault_error(404, model), as_array)
        if request.method == "GET" and not action:
            return jsonify(replies.model_resource(model))
        if request.method != "POST" or not isinstance(body, dict):
            return google_error(400, replies.error_body(400, "Invalid JSON payload received."), as_array)
        handler = _ACTIONS.get(action)
        if handler is None:
            return google_error(404, replies.error_body(404, f"Method {action} not found for models/{model}."))
        try:
            fault = state.take_fault(model, key, action)
            response = _fault_response(fault, model, streaming)
            if response is None:
                time.sleep(state.latency_for(model))
                response = _stream(state, model, body, fault) if streaming else handler(state, model, body)
        except BadRequest as exc:
            response = google_error(400, replies.error_body(400, str(exc)), as_array)
        return response

    register_control(app, state)
    register_files(app, state, _API_VERSIONS, _api_key, google_error)
    register_openai(app, state, _API_VERSIONS, _api_key, _chunks)

    @app.errorhandler(404)
    def unknown_path(_error):
        return google_error(404, replies.error_body(404, f"Unknown path {request.path}."))

    return app


def _api_key():
    bearer = request.headers.get("Authorization", "")
    return (request.headers.get("x-goog-api-key") or request.args.get("key")
            or (bearer[7:].strip() if bearer.lower().startswith("bearer ") else ""))


def _sse():
    return request.args.get("alt") == "sse"


def _int_enums():
    return "enum-encoding=int" in request.args.get("$alt", "")


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
    payload = [body] if streaming and not _sse() else body
    return Response(json.dumps(payload), status=status, mimetype="application/json")


def _chunks(state, model, body):
    """The answer as a list of GenerateContentResponse dicts (one for unary calls)."""
    prompt, prompt_tokens, max_tokens = read_generation(body)
    int_enums = _int_enums()
    seed = f"{model}|{prompt}"
    common = {"modelVersion": model, "responseId": replies.response_id(seed)}
    omit_usage = state.omit_usage or "[[no-usage]]" in prompt
    if "[[block-prompt]]" in prompt:
        chunk = {"promptFeedback": {"blockReason": replies.enum("SAFETY", replies.BLOCK_REASONS, int_enums)},
                 **common}
        if not omit_usage:
            chunk["usageMetadata"] = replies.usage(prompt_tokens, 0)
        return [chunk]
    if "[[block-answer]]" in prompt:
        chunk = {"candidates": [{"finishReason": replies.enum("SAFETY", replies.FINISH_REASONS, int_enums),
                                 "index": 0}], **common}
        if not omit_usage:
            chunk["usageMetadata"] = replies.usage(prompt_tokens, 0)
        return [chunk]
    text, finish = replies.answer_text(model, prompt, max_tokens)
    if "[[finish-unknown]]" in prompt:
        finish = "NEWER_THAN_THE_SDK"
    words = text.split(" ")
    size = max(1, int(state.stream_chunk_words))
    pieces = [" ".join(words[i:i + size]) + (" " if i + size < len(words) else "")
              for i in range(0, len(words), size)]
    chunks, produced = [], 0
    for number, piece in enumerate(pieces):
        produced += len(piece.split())
        part = {"text": piece}
        candidate = {"content": {"parts": [part], "role": "model"}, "index": 0}
        if number == len(pieces) - 1:
            candidate["finishReason"] = replies.enum(finish, replies.FINISH_REASONS, int_enums)
        chunk = {"candidates": [candidate], **common}
        if not omit_usage:
            chunk["usageMetadata"] = replies.usage(prompt_tokens, produced)
        chunks.append(chunk)
    big = _big_chunk_size(prompt)
    if big:
        chunks[0]["candidates"][0]["content"]["parts"][0]["thoughtSignature"] = "A" * big
    return chunks


def _big_chunk_size(prompt):
    marker = "[[big-chunk:"
    if marker not in prompt:
        return 0
    try:
        return int(prompt.split(marker, 1)[1].split("]]", 1)[0])
    except ValueError:
        return 0


def _merge(chunks):
    """Fold streamed chunks into the single response generateContent returns."""
    merged = json.loads(json.dumps(chunks[-1]))
    if "candidates" in merged and merged["candidates"][0].get("content"):
        text = "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks)
        merged["candidates"][0]["content"]["parts"] = [{"text": text}]
    return merged


def _generate(state, model, body):
    return Response(json.dumps(_merge(_chunks(state, model, body))), mimetype="application/json")


class _StreamCut(Exception):
    """Raised mid-body so the server drops the connection without ending the stream."""


def _stream(state, model, body, fault=None):
    chunks = _chunks(state, model, body)
    delay = state.stream_chunk_delay_ms / 1000.0
    sse = _sse()
    mode = (fault or {}).get("mode")
    after = int((fault or {}).get("after_chunks", 1))

    def produce():
        for number, chunk in enumerate(chunks):
            if number and delay:
                time.sleep(delay)
            if number == after and mode == "cut":
                raise _StreamCut(f"stream cut after {after} chunks")
            if number == after and mode == "stall":
                time.sleep(float(fault.get("seconds", 30)))
            data = json.dumps(chunk)
            if sse:
                yield f"data: {data}\r\n\r\n"
            else:
                yield ("[" if number == 0 else "\n,\r\n") + data
        if not sse:
            yield "]"

    mimetype = "text/event-stream" if sse else "application/json"
    return Response(produce(), mimetype=mimetype)


def _count_tokens(state, model, body):
    inner = field(body, "generateContentRequest", "generate_content_request")
    contents = (inner or body).get("contents") if isinstance(inner or body, dict) else None
    if not isinstance(contents, list):
        raise BadRequest("* CountTokensRequest: contents or generateContentRequest is required")
    counted = [text for content in contents for text in texts(content)]
    total = replies.count_tokens(" ".join(counted))
    return jsonify({"totalTokens": total, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}]})


def _embedding(content):
    text = " ".join(texts(content))
    values = [((hash((text, i)) % 2000) - 1000) / 1000.0 for i in range(replies.EMBEDDING_SIZE)]
    return {"values": values}


def _embed(state, model, body):
    return jsonify({"embedding": _embedding(body.get("content") or {})})


def _batch_embed(state, model, body):
    requests_ = body.get("requests")
    if not isinstance(requests_, list):
        raise BadRequest("* BatchEmbedContentsRequest.requests: requests is not specified")
    return jsonify({"embeddings": [_embedding(r.get("content") or {}) for r in requests_]})


_ACTIONS = {
    "generateContent": _generate,
    "streamGenerateContent": _stream,
    "countTokens": _count_tokens,
    "embedContent": _embed,
    "batchEmbedContents": _batch_embed,
}

"""Gemini's OpenAI-compatible endpoint, emulated: POST /{version}/openai/chat/completions (answered from
the same replies as generateContent, whole or streamed as OpenAI's server-sent chunks, with a last usage
chunk when stream_options.include_usage asks for one; function tools answer with tool_calls),
POST /{version}/openai/embeddings, and GET /{version}/openai/models[/{model}]."""
import json
import time

from flask import Response, request

from . import openai_convert, replies
from .reading import BadRequest, Refused


def register_openai(app, state, versions, api_key, chunks_of, embedding_of):
    """Add the routes to the emulator `app`; `chunks_of(state, model, body, key)` makes generateContent's
    answer chunks from a Gemini request body, `embedding_of(text)` an embedding's values."""

    def error(status, message):
        return Response(json.dumps([replies.error_body(status, message)]), status=status,
                        mimetype="application/json")

    def refusal(version, action, model=None, body=None, problem=None):
        """The error a call is refused with before it is served (version, key, then `problem`: what is wrong
        with its body), else None; a call that passes is recorded."""
        key = api_key()
        if version not in versions:
            return key, error(404, f"Unknown API version {version}.")
        if not key:
            return key, error(401, "Missing bearer or basic authentication in header.")
        if state.valid_keys and key not in state.valid_keys:
            return key, error(400, "API key not valid. Please pass a valid API key.")
        if problem:
            return key, error(400, problem)
        state.enter({"model": model, "action": action, "key": key, "query": dict(request.args),
                     "headers": {k.lower(): v for k, v in request.headers.items()}, "body": body,
                     "time": time.time()})
        state.leave()
        return key, None

    @app.post("/<version>/openai/chat/completions")
    def chat_completions(version):
        body = request.get_json(force=True, silent=True)
        model = str((body or {}).get("model", "") if isinstance(body, dict) else "").removeprefix("models/")
        problem = None if isinstance(body, dict) and isinstance(body.get("messages"), list) else (
            "Invalid JSON payload: messages is required.")
        key, refused = refusal(version, "openai.chat.completions", model, body, problem)
        if refused is not None:
            return refused
        if model not in replies.MODELS or replies.live_only(model):
            return error(404, f"models/{model} is not found for API version {version}.")
        fault = state.take_fault(model, key, "chat/completions")
        if fault is not None and "status" in fault:
            return error(int(fault["status"]), "Injected fault.")
        time.sleep(state.latency_for(model))
        try:
            chunks = chunks_of(state, model, openai_convert.gemini_body(body), key)
        except BadRequest as exc:
            return error(400, str(exc))
        except Refused as exc:
            return error(exc.status, str(exc))
        ident = "chatcmpl-" + replies.response_id(f"{model}|{json.dumps(body['messages'])}")
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return Response(openai_convert.streamed(chunks, model, ident, include_usage,
                                                    state.stream_chunk_delay_ms / 1000),
                            mimetype="text/event-stream")
        return Response(json.dumps(openai_convert.whole(chunks, model, ident)), mimetype="application/json")

    @app.post("/<version>/openai/embeddings")
    def openai_embeddings(version):
        body = request.get_json(force=True, silent=True)
        model = str((body or {}).get("model", "") if isinstance(body, dict) else "").removeprefix("models/")
        key, refused = refusal(version, "openai.embeddings", model, body)
        if refused is not None:
            return refused
        inputs = body.get("input") if isinstance(body, dict) else None
        inputs = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(inputs, list) or not inputs or not all(isinstance(text, str) for text in inputs):
            return error(400, "Invalid JSON payload: input must be a string or a list of strings.")
        if model not in replies.MODELS or "embedContent" not in replies.MODELS[model].get("methods", ()):
            return error(404, f"models/{model} is not found for API version {version}, or is not supported "
                              "for embedContent.")
        encoding = body.get("encoding_format") or "float"
        return Response(json.dumps(openai_convert.embeddings(model, inputs, encoding, embedding_of)),
                        mimetype="application/json")

    @app.get("/<version>/openai/models")
    def openai_models(version):
        _, refused = refusal(version, "openai.models")
        if refused is not None:
            return refused
        return Response(json.dumps({"object": "list", "data": [
            openai_convert.model_object(name) for name in sorted(replies.MODELS)]}), mimetype="application/json")

    @app.get("/<version>/openai/models/<path:model>")
    def openai_model(version, model):
        model = model.removeprefix("models/")
        _, refused = refusal(version, "openai.models.get", model)
        if refused is not None:
            return refused
        if model not in replies.MODELS:
            return error(404, f"models/{model} is not found for API version {version}.")
        return Response(json.dumps(openai_convert.model_object(model)), mimetype="application/json")

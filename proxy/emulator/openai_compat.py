"""Gemini's OpenAI-compatible endpoint, emulated: POST /{version}/openai/chat/completions, answered from
the same replies as generateContent, whole or streamed as OpenAI's server-sent chunks (with a last
usage chunk when stream_options.include_usage asks for one)."""
import json
import time

from flask import Response, request

from . import replies

_FINISH = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter"}


def _contents(messages):
    """OpenAI messages as Gemini contents (text only), the system ones as the system instruction."""
    contents, system = [], []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            content = " ".join(part.get("text", "") for part in content if isinstance(part, dict))
        if not isinstance(content, str):
            continue
        if message.get("role") == "system":
            system.append({"text": content})
        else:
            contents.append({"role": "model" if message.get("role") == "assistant" else "user",
                             "parts": [{"text": content}]})
    body = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    return body


def register_openai(app, state, versions, api_key, chunks_of):
    """Add the route to the emulator `app`; `chunks_of(state, model, body)` makes generateContent's
    answer chunks from a Gemini request body."""

    def error(status, message):
        return Response(json.dumps([replies.error_body(status, message)]), status=status,
                        mimetype="application/json")

    @app.post("/<version>/openai/chat/completions")
    def chat_completions(version):
        key = api_key()
        body = request.get_json(force=True, silent=True)
        if version not in versions:
            return error(404, f"Unknown API version {version}.")
        if not key:
            return error(401, "Missing bearer or basic authentication in header.")
        if state.valid_keys and key not in state.valid_keys:
            return error(400, "API key not valid. Please pass a valid API key.")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return error(400, "Invalid JSON payload: messages is required.")
        model = str(body.get("model", "")).removeprefix("models/")
        state.enter({"model": model, "action": "openai.chat.completions", "key": key, "query": dict(request.args),
                     "headers": {k.lower(): v for k, v in request.headers.items()}, "body": body,
                     "time": time.time()})
        state.leave()
        if model not in replies.MODELS:
            return error(404, f"models/{model} is not found for API version {version}.")
        fault = state.take_fault(model, key, "chat/completions")
        if fault is not None and "status" in fault:
            return error(int(fault["status"]), "Injected fault.")
        time.sleep(state.latency_for(model))
        settings = {"maxOutputTokens": body.get("max_tokens") or body.get("max_completion_tokens")}
        gemini = _contents(body["messages"])
        gemini["generationConfig"] = {name: value for name, value in settings.items() if value}
        chunks = chunks_of(state, model, gemini)
        ident = "chatcmpl-" + replies.response_id(f"{model}|{json.dumps(body['messages'])}")
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return Response(_streamed(chunks, model, ident, include_usage, state.stream_chunk_delay_ms / 1000),
                            mimetype="text/event-stream")
        return Response(json.dumps(_whole(chunks, model, ident)), mimetype="application/json")


def _piece(chunk):
    candidate = (chunk.get("candidates") or [{}])[0]
    text = "".join(part.get("text", "") for part in (candidate.get("content") or {}).get("parts", []))
    finish = candidate.get("finishReason")
    return text, _FINISH.get(finish, "stop") if finish else None


def _usage(chunk):
    usage = chunk.get("usageMetadata") or {}
    return {"prompt_tokens": usage.get("promptTokenCount", 0),
            "completion_tokens": usage.get("candidatesTokenCount", 0),
            "total_tokens": usage.get("totalTokenCount", 0)}


def _whole(chunks, model, ident):
    text = "".join(_piece(chunk)[0] for chunk in chunks)
    finish = _piece(chunks[-1])[1] or "stop"
    return {"id": ident, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
            "usage": _usage(chunks[-1])}


def _streamed(chunks, model, ident, include_usage, delay):
    common = {"id": ident, "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
    for number, chunk in enumerate(chunks):
        if number and delay:
            time.sleep(delay)
        text, finish = _piece(chunk)
        delta = {"role": "assistant", "content": text} if number == 0 else {"content": text}
        yield f"data: {json.dumps({**common, 'choices': [{'index': 0, 'delta': delta, 'finish_reason': finish}]})}\n\n"
    if include_usage:
        yield f"data: {json.dumps({**common, 'choices': [], 'usage': _usage(chunks[-1])})}\n\n"
    yield "data: [DONE]\n\n"

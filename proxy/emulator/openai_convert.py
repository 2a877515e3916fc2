"""OpenAI chat requests as Gemini bodies, and Gemini answer chunks as OpenAI's chat completions: text,
function tools and tool_calls (each call's thought signature under extra_content.google, as Gemini's
OpenAI-compatible endpoint carries it), response_format and reasoning_effort."""
import base64
import json
import struct
import time

from . import replies

_FINISH = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter"}
# reasoning_effort as thinking budgets (Google's OpenAI compatibility guide).
_EFFORT_BUDGETS = {"none": 0, "minimal": 128, "low": 1024, "medium": 8192, "high": 24576}


def _text(content):
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else None


def _call_parts(message, names):
    parts = []
    for call in message.get("tool_calls") or []:
        if not isinstance(call, dict):
            continue
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        try:
            args = json.loads(function.get("arguments") or "{}")
        except ValueError:
            args = {}
        part = {"functionCall": {"name": function.get("name", ""), "args": args}}
        signature = ((call.get("extra_content") or {}).get("google") or {}).get("thought_signature")
        if signature:
            part["thoughtSignature"] = signature
        names[call.get("id")] = function.get("name", "")
        parts.append(part)
    return parts


def _tool_result(message, names):
    content = _text(message.get("content")) or ""
    try:
        result = json.loads(content)
    except ValueError:
        result = content
    return {"functionResponse": {"name": names.get(message.get("tool_call_id"), message.get("name", "")),
                                 "response": result if isinstance(result, dict) else {"result": result}}}


def gemini_body(body):
    """The generateContent body an OpenAI chat request stands for."""
    contents, system, names = [], [], {}
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if role in ("system", "developer"):
            if _text(message.get("content")) is not None:
                system.append({"text": _text(message.get("content"))})
        elif role == "tool":
            part = _tool_result(message, names)
            if contents and contents[-1]["role"] == "user" and "functionResponse" in contents[-1]["parts"][0]:
                contents[-1]["parts"].append(part)
            else:
                contents.append({"role": "user", "parts": [part]})
        elif role == "assistant":
            text = _text(message.get("content"))
            parts = ([{"text": text}] if text else []) + _call_parts(message, names)
            if parts:
                contents.append({"role": "model", "parts": parts})
        elif _text(message.get("content")) is not None:
            contents.append({"role": "user", "parts": [{"text": _text(message.get("content"))}]})
    gemini = {"contents": contents}
    if system:
        gemini["systemInstruction"] = {"parts": system}
    _add_tools(body, gemini)
    gemini["generationConfig"] = _config(body)
    return gemini


def _add_tools(body, gemini):
    functions = [tool.get("function") for tool in body.get("tools") or []
                 if isinstance(tool, dict) and tool.get("type") == "function" and isinstance(tool.get("function"), dict)]
    if not functions:
        return
    gemini["tools"] = [{"functionDeclarations": [
        {"name": f.get("name"), "description": f.get("description", ""), "parametersJsonSchema": f.get("parameters")
         or {"type": "object", "properties": {}}} for f in functions]}]
    choice = body.get("tool_choice")
    if choice == "none":
        gemini["toolConfig"] = {"functionCallingConfig": {"mode": "NONE"}}
    elif choice == "required":
        gemini["toolConfig"] = {"functionCallingConfig": {"mode": "ANY"}}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        gemini["toolConfig"] = {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [
            choice["function"].get("name")]}}


def _config(body):
    config = {}
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit:
        config["maxOutputTokens"] = limit
    shape = body.get("response_format") or {}
    if isinstance(shape, dict) and shape.get("type") == "json_object":
        config["responseMimeType"] = "application/json"
    elif isinstance(shape, dict) and shape.get("type") == "json_schema":
        config["responseMimeType"] = "application/json"
        config["responseJsonSchema"] = (shape.get("json_schema") or {}).get("schema") or {"type": "object"}
    effort = body.get("reasoning_effort")
    if isinstance(effort, str) and effort in _EFFORT_BUDGETS:
        config["thinkingConfig"] = {"thinkingBudget": _EFFORT_BUDGETS[effort]}
    return config


def _candidate_parts(chunk):
    """A chunk's answer parts (thoughts left out, as Google's endpoint leaves them) and its finish reason."""
    candidate = (chunk.get("candidates") or [{}])[0]
    parts = [p for p in (candidate.get("content") or {}).get("parts", []) if not p.get("thought")]
    return parts, candidate.get("finishReason")


def _tool_calls(parts, ident):
    calls = []
    for number, part in enumerate(p for p in parts if "functionCall" in p):
        call = {"id": f"call_{ident[-12:]}_{number}", "type": "function",
                "function": {"name": part["functionCall"]["name"],
                             "arguments": json.dumps(part["functionCall"].get("args") or {})}}
        if part.get("thoughtSignature"):
            call["extra_content"] = {"google": {"thought_signature": part["thoughtSignature"]}}
        calls.append(call)
    return calls


def _finish(finish, calls):
    if calls:
        return "tool_calls"
    return _FINISH.get(finish, "stop") if finish else None


def usage(chunk):
    used = chunk.get("usageMetadata") or {}
    counted = {"prompt_tokens": used.get("promptTokenCount", 0),
               "completion_tokens": used.get("candidatesTokenCount", 0),
               "total_tokens": used.get("totalTokenCount", 0)}
    if used.get("thoughtsTokenCount"):
        counted["completion_tokens_details"] = {"reasoning_tokens": used["thoughtsTokenCount"]}
    return counted


def whole(chunks, model, ident):
    parts = [p for chunk in chunks for p in _candidate_parts(chunk)[0]]
    text = "".join(p.get("text", "") for p in parts)
    calls = _tool_calls(parts, ident)
    message = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    finish = _finish(_candidate_parts(chunks[-1])[1] or "STOP", calls)
    return {"id": ident, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": usage(chunks[-1])}


def streamed(chunks, model, ident, include_usage, delay):
    common = {"id": ident, "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
    for number, chunk in enumerate(chunks):
        if number and delay:
            time.sleep(delay)
        parts, finish = _candidate_parts(chunk)
        calls = _tool_calls(parts, ident)
        delta = {"content": "".join(p.get("text", "") for p in parts)}
        if calls:
            delta = {"content": None, "tool_calls": [{"index": i, **call} for i, call in enumerate(calls)]}
        if number == 0:
            delta = {"role": "assistant", **delta}
        choice = {"index": 0, "delta": delta, "finish_reason": _finish(finish, calls)}
        yield f"data: {json.dumps({**common, 'choices': [choice]})}\n\n"
    if include_usage:
        yield f"data: {json.dumps({**common, 'choices': [], 'usage': usage(chunks[-1])})}\n\n"
    yield "data: [DONE]\n\n"


def embeddings(model, inputs, encoding, vector_of):
    """OpenAI's embeddings answer for `inputs`; `vector_of(text)` is the emulator's embedding of a text."""
    data = []
    for index, text in enumerate(inputs):
        vector = vector_of(text)
        if encoding == "base64":  # what the openai SDK asks for by default: little-endian float32s
            vector = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    tokens = sum(replies.count_tokens(text) for text in inputs)
    return {"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def model_object(name):
    return {"id": f"models/{name}", "object": "model", "created": 1704067200, "owned_by": "google"}

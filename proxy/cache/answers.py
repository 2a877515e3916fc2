"""Cached answers are complete GenerateContentResponse bodies; streams are folded and replayed."""
import json

from ..wire.stream import iter_json_objects
from ..wire.usage import Usage

COMPLETE = {"STOP", "MAX_TOKENS", 1, 2}  # a blocked or cut answer is never stored


def fold(objects):
    """One complete text answer from a stream's (or a single response's) objects, or None."""
    objects = list(objects)
    if not objects or any("error" in o for o in objects):
        return None
    last = objects[-1]
    texts, finish = [], None
    for obj in objects:
        candidates = obj.get("candidates") or []
        if len(candidates) != 1:
            return None
        candidate = candidates[0]
        for part in (candidate.get("content") or {}).get("parts") or []:
            if set(part) != {"text"}:
                return None  # function calls, thoughts, inline data: not folded, not cached
            texts.append(part["text"])
        finish = candidate.get("finishReason", finish)
    if finish not in COMPLETE or (last.get("promptFeedback") or {}).get("blockReason") is not None:
        return None
    folded = {"candidates": [{"content": {"parts": [{"text": "".join(texts)}], "role": "model"},
                              "finishReason": {1: "STOP", 2: "MAX_TOKENS"}.get(finish, finish), "index": 0}]}
    for name in ("usageMetadata", "modelVersion", "responseId"):
        if name in last:
            folded[name] = last[name]
    return folded


def fold_body(raw):
    return fold(iter_json_objects(raw.decode("utf-8", errors="replace")))


def from_completion(completion, model):
    return {"candidates": [{"content": {"parts": [{"text": completion.text or ""}], "role": "model"},
                            "finishReason": completion.finish_reason or "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 0, "candidatesTokenCount": 0, "totalTokenCount": 0,
                              **completion.usage.to_gemini()},
            "modelVersion": model}


def replay(answer, streaming, sse):
    """The bytes to send: one JSON body, or a one-chunk stream in the format the client asked for."""
    data = json.dumps(answer)
    if not streaming:
        return data.encode(), "application/json"
    if sse:
        return f"data: {data}\r\n\r\n".encode(), "text/event-stream"
    return f"[{data}]".encode(), "application/json"


def usage_of(answer):
    """The stored answer's usage (every token kind it was answered with), a wire.usage.Usage."""
    return Usage.from_gemini(answer.get("usageMetadata"))

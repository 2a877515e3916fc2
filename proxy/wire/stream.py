"""Reading Gemini's answers: the JSON objects of an SSE stream, a streamed array or a plain body, and
what they say about usage, finish reason, model version and errors (Gemini's and OpenAI's shapes)."""
import json

import orjson

from .usage import Usage

_SEPARATORS = " \t\r\n,[]"


_WHITESPACE = " \t\r\n"  # JSON's
_PLAIN = (str, type(None))  # values a summary keeps as they are, which orjson reads as json does


def _one_object(text):
    """The text as the one JSON object it is, read by orjson, or None to leave it to the scanner: when it is
    not one object, or holds what orjson reads otherwise than json (an integer past 64 bits is a float to
    it) where a summary would show it other than as a token count (which is None either way): an error,
    OpenAI's shape, a model or finish reason that is not text. For summaries only: the objects may differ."""
    start, end = 0, len(text)
    while start < end and text[start] in _WHITESPACE:
        start += 1
    while end > start and text[end - 1] in _WHITESPACE:
        end -= 1
    if start == end or text[start] != "{" or text[end - 1] != "}":
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if type(value) is not dict or "error" in value or "object" in value or \
            type(value.get("modelVersion")) not in _PLAIN:
        return None
    for candidate in value.get("candidates") if type(value.get("candidates")) is list else ():
        if type(candidate) is dict and type(candidate.get("finishReason")) not in _PLAIN:
            return None
    feedback = value.get("promptFeedback")
    if type(feedback) is dict and type(feedback.get("blockReason")) not in _PLAIN:
        return None
    return value


def summarize_text(text):
    """summarize(iter_json_objects(text)), with an answer that is not streamed read at C speed."""
    whole = _one_object(text)
    return summarize((whole,) if whole is not None else iter_json_objects(text))


def iter_json_objects(text):
    """Yield each complete top-level JSON object; a truncated tail (an aborted stream) is skipped."""
    decoder = json.JSONDecoder()
    position, length = 0, len(text)
    while position < length:
        while position < length and text[position] in _SEPARATORS:
            position += 1
        if text.startswith("data:", position):
            position += 5
            continue
        if position >= length:
            return
        if text[position] != "{":
            position = text.find("{", position)
            if position < 0:
                return
            continue
        try:
            value, position = decoder.raw_decode(text, position)
        except ValueError:
            return
        if isinstance(value, dict):
            yield value


def summarize(objects):
    """Usage (a wire.usage.Usage: cumulative, so the last chunk that has one wins), finish reason, model
    version and any error."""
    summary = {"usage": Usage(), "finish_reason": None, "model_version": None, "error": None, "chunks": 0}
    for obj in objects:
        summary["chunks"] += 1
        if "object" in obj and str(obj["object"]).startswith("chat.completion"):  # OpenAI-compatible endpoint
            _openai(summary, obj)
            continue
        if "error" in obj and isinstance(obj["error"], dict):
            summary["error"] = obj["error"]
        usage = obj.get("usageMetadata")
        if isinstance(usage, dict):
            summary["usage"] = Usage.from_gemini(usage)
        summary["model_version"] = obj.get("modelVersion") or summary["model_version"]
        for candidate in obj.get("candidates") or ():
            if isinstance(candidate, dict) and candidate.get("finishReason") is not None:
                summary["finish_reason"] = candidate["finishReason"]
        feedback = obj.get("promptFeedback")
        if isinstance(feedback, dict) and feedback.get("blockReason") is not None:
            summary["finish_reason"] = f"BLOCKED_{feedback['blockReason']}"
    return summary


def _openai(summary, obj):
    """An OpenAI-shaped answer or chunk, read into the same summary (its usage is the last chunk's)."""
    usage = obj.get("usage")
    if isinstance(usage, dict):
        summary["usage"] = Usage.from_openai(usage)
    summary["model_version"] = obj.get("model") or summary["model_version"]
    for choice in obj.get("choices") or ():
        if isinstance(choice, dict) and choice.get("finish_reason") is not None:
            summary["finish_reason"] = str(choice["finish_reason"]).upper()  # as Gemini's read: STOP, LENGTH

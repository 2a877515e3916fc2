"""Reading what crossed the proxy: JSON objects out of SSE, streamed arrays or plain bodies."""
import json
from collections import deque

_SEPARATORS = " \t\r\n,[]"
_TAIL_CHUNKS = 16  # kept past the cap so the last usage metadata is never lost


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
    """Usage (cumulative, so the last seen wins), finish reason, model version and any error."""
    summary = {"usage": None, "finish_reason": None, "model_version": None, "error": None, "chunks": 0}
    for obj in objects:
        summary["chunks"] += 1
        if "object" in obj and str(obj["object"]).startswith("chat.completion"):  # OpenAI-compatible endpoint
            _openai(summary, obj)
            continue
        if "error" in obj and isinstance(obj["error"], dict):
            summary["error"] = obj["error"]
        usage = obj.get("usageMetadata")
        if isinstance(usage, dict):
            summary["usage"] = usage
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
        summary["usage"] = {"promptTokenCount": usage.get("prompt_tokens"),
                            "candidatesTokenCount": usage.get("completion_tokens"),
                            "totalTokenCount": usage.get("total_tokens")}
    summary["model_version"] = obj.get("model") or summary["model_version"]
    for choice in obj.get("choices") or ():
        if isinstance(choice, dict) and choice.get("finish_reason") is not None:
            summary["finish_reason"] = str(choice["finish_reason"]).upper()  # as Gemini's read: STOP, LENGTH


class Capture:
    """Keeps the head of a body up to `cap` bytes for storage, and its last chunks for parsing."""

    def __init__(self, cap):
        self.cap = cap
        self.head = []
        self.head_bytes = 0
        self.tail = deque(maxlen=_TAIL_CHUNKS)
        self.total = 0

    def add(self, chunk):
        self.total += len(chunk)
        if self.head_bytes < self.cap:
            piece = chunk[: self.cap - self.head_bytes]
            self.head.append(piece)
            self.head_bytes += len(piece)
        self.tail.append(chunk)

    @property
    def truncated(self):
        return self.total > self.head_bytes

    def stored(self):
        return b"".join(self.head)

    def parse_text(self):
        """The text to read usage from: the whole body when it was kept whole, else its last chunks."""
        raw = self.stored() if not self.truncated else b"".join(self.tail)
        return raw.decode("utf-8", errors="replace")

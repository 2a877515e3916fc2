"""Gemini's generation answers, emulated: generateContent whole or streamed, countTokens and embeddings,
shared by the REST routes, the OpenAI-compatible endpoint and batches. An answer is prose, function calls
(tools.py), structured output (json_mode.py), with thinking and signatures (thinking.py) and usage
(metering.py); what it names must be the key's project's (scoping.py, caches.py)."""
import hashlib
import json
import time

from flask import Response, has_request_context, jsonify, request

from . import caches, json_mode, metering, replies, scoping, thinking, tools
from .reading import BadRequest, Refused, field, read_generation, texts


def sse():
    return has_request_context() and request.args.get("alt") == "sse"


def _int_enums():
    return has_request_context() and "enum-encoding=int" in request.args.get("$alt", "")


def answer(state, model, body, key=None):
    """The whole GenerateContentResponse dict for a request body (what generateContent returns)."""
    return _merge(chunks(state, model, body, key))


def _cached_tokens(state, model, body, key):
    """The tokens of the cache a request names, which must be its key's project's and for its model."""
    name = field(body, "cachedContent", "cached_content")
    if name is None:
        return 0
    held = caches.usable_cache(state, name, key)
    if held is None:
        raise Refused(403, f"CachedContent not found (or permission denied): {str(name)[:80]}")
    if held.get("model") != f"models/{model}":
        raise BadRequest(f"Model used by GenerateContent request (models/{model}) and CachedContent "
                         f"({held.get('model')}) has to be the same.")
    return int((held.get("usageMetadata") or {}).get("totalTokenCount") or 0)


def chunks(state, model, body, key=None):
    """The answer as a list of GenerateContentResponse dicts (one for unary calls)."""
    cached = _cached_tokens(state, model, body, key)
    scoping.check_references(state, body, key)
    answer_chunks = _chunks(state, model, body, key)
    for chunk in answer_chunks if cached else ():
        usage = chunk.get("usageMetadata")
        if usage is not None:
            usage["promptTokenCount"] += cached
            usage["totalTokenCount"] += cached
            usage["cachedContentTokenCount"] = cached
    return answer_chunks


def _system_text(body):
    system = field(body, "systemInstruction", "system_instruction")
    if isinstance(system, str):
        return system
    return " ".join(texts(system)) if isinstance(system, dict) else ""


class _Answer:
    """What one generation's chunks share: the request read once, its thinking, and the chunk framing."""

    def __init__(self, state, model, body, key):
        self.prompt, self.prompt_tokens, self.max_tokens = read_generation(body)
        self.state, self.model, self.body = state, model, body
        self.config = field(body, "generationConfig", "generation_config") or {}
        self.contents = body["contents"] if isinstance(body["contents"], list) else [body["contents"]]
        self.project = state.project_of(key)
        self.int_enums = _int_enums()
        self.common = {"modelVersion": model, "responseId": replies.response_id(f"{model}|{self.prompt}")}
        self.omit_usage = state.omit_usage or "[[no-usage]]" in self.prompt
        self.thoughts = 0

    def enum(self, value, table):
        return replies.enum(value, table, self.int_enums)

    def chunk(self, candidate, produced, usage=None):
        chunk = {"candidates": [candidate], **self.common} if candidate is not None else dict(self.common)
        if not self.omit_usage:
            chunk["usageMetadata"] = usage or metering.usage_metadata(self.body, self.prompt_tokens, produced,
                                                                      self.thoughts)
        return chunk

    def sign(self, what):
        return thinking.sign(self.project, self.model, f"{self.common['responseId']}|{what}")


def _chunks(state, model, body, key=None):
    answer = _Answer(state, model, body, key)
    thinking.check_turn(answer.contents, answer.project, model)
    if "[[block-prompt]]" in answer.prompt:
        chunk = answer.chunk(None, 0, replies.usage(answer.prompt_tokens, 0))
        return [{"promptFeedback": {"blockReason": answer.enum("SAFETY", replies.BLOCK_REASONS)}, **chunk}]
    if "[[block-answer]]" in answer.prompt:
        candidate = {"finishReason": answer.enum("SAFETY", replies.FINISH_REASONS), "index": 0}
        return [answer.chunk(candidate, 0, replies.usage(answer.prompt_tokens, 0))]
    answer.thoughts = thinking.thought_tokens(model, answer.config, answer.prompt_tokens)
    shown = answer.thoughts and thinking.includes_thoughts(answer.config)
    lead = [thinking.thought_part(answer.prompt)] if shown else []
    calls = tools.chosen_calls(body)
    if calls:
        return [_call_chunk(answer, lead, calls)]
    return _text_chunks(answer, lead)


def _call_chunk(answer, lead, calls):
    """The function calls, whole in one chunk as Gemini streams them; Gemini 3 signs the first."""
    parts = lead + [{"functionCall": call} for call in calls]
    if thinking.gemini3(answer.model):
        parts[len(lead)]["thoughtSignature"] = answer.sign("call")
    candidate = {"content": {"parts": parts, "role": "model"},
                 "finishReason": answer.enum("STOP", replies.FINISH_REASONS), "index": 0}
    return answer.chunk(candidate, replies.count_tokens(json.dumps(calls)))


def _text_chunks(answer, lead):
    """The text answer (prose, a function response's use, or structured output) in pieces of
    stream_chunk_words words; Gemini 3 signs the first piece."""
    text, finish = replies.answer_text(answer.model, answer.prompt, answer.max_tokens, _system_text(answer.body))
    responses = tools.function_responses(answer.contents)
    if responses:
        text, finish = _cut(tools.response_text(responses), answer.max_tokens)
    structured = json_mode.structured_text(answer.config, text)
    if structured is not None:
        text, finish = _cut(structured, answer.max_tokens)
    if "[[finish-unknown]]" in answer.prompt:
        finish = "NEWER_THAN_THE_SDK"
    words = text.split(" ")
    size = max(1, int(answer.state.stream_chunk_words))
    pieces = [" ".join(words[i:i + size]) + (" " if i + size < len(words) else "")
              for i in range(0, len(words), size)]
    chunks, produced = [], 0
    for number, piece in enumerate(pieces):
        produced += len(piece.split())
        part = {"text": piece}
        if number == 0 and thinking.gemini3(answer.model):
            part["thoughtSignature"] = answer.sign("text")
        candidate = {"content": {"parts": (lead if number == 0 else []) + [part], "role": "model"}, "index": 0}
        if number == len(pieces) - 1:
            candidate["finishReason"] = answer.enum(finish, replies.FINISH_REASONS)
        chunks.append(answer.chunk(candidate, produced))
    big = _big_chunk_size(answer.prompt)
    if big:
        chunks[0]["candidates"][0]["content"]["parts"][-1]["thoughtSignature"] = "A" * big
    return chunks


def _cut(text, max_tokens):
    """`text` cut to maxOutputTokens words, as answer_text cuts the prose answer."""
    words = text.split(" ")
    if max_tokens is not None and len(text.split()) > max_tokens:
        return " ".join(words[:max_tokens]), "MAX_TOKENS"
    return text, "STOP"


def _big_chunk_size(prompt):
    marker = "[[big-chunk:"
    if marker not in prompt:
        return 0
    try:
        return int(prompt.split(marker, 1)[1].split("]]", 1)[0])
    except ValueError:
        return 0


def _merge(chunks):
    """Fold streamed chunks into the single response generateContent returns: the text pieces of one
    kind (thought or answer) joined into one part, which keeps the first piece's signature."""
    merged = json.loads(json.dumps(chunks[-1]))
    if "candidates" not in merged or not merged["candidates"][0].get("content"):
        return merged
    parts = []
    for chunk in chunks:
        for part in chunk["candidates"][0]["content"]["parts"]:
            last = parts[-1] if parts else None
            if (last is not None and "text" in part and "text" in last
                    and bool(last.get("thought")) == bool(part.get("thought"))):
                last["text"] += part["text"]
            else:
                parts.append(dict(part))
    merged["candidates"][0]["content"]["parts"] = parts
    return merged


def _generate(state, model, body, key=None):
    return Response(json.dumps(_merge(chunks(state, model, body, key))), mimetype="application/json",
                    headers=metering.tier_headers(body))


class _StreamCut(Exception):
    """Raised mid-body so the server drops the connection without ending the stream."""


def stream(state, model, body, fault=None, key=None):
    answer_chunks = chunks(state, model, body, key)
    delay = state.stream_chunk_delay_ms / 1000.0
    as_sse = sse()
    mode = (fault or {}).get("mode")
    after = int((fault or {}).get("after_chunks", 1))

    def produce():
        for number, chunk in enumerate(answer_chunks):
            if number and delay:
                time.sleep(delay)
            if number == after and mode == "cut":
                raise _StreamCut(f"stream cut after {after} chunks")
            if number == after and mode == "stall":
                time.sleep(float(fault.get("seconds", 30)))
            data = json.dumps(chunk)
            if as_sse:
                yield f"data: {data}\r\n\r\n"
            else:
                yield ("[" if number == 0 else "\n,\r\n") + data
        if not as_sse:
            yield "]"

    mimetype = "text/event-stream" if as_sse else "application/json"
    return Response(produce(), mimetype=mimetype, headers=metering.tier_headers(body))


def _count_tokens(state, model, body, key=None):
    inner = field(body, "generateContentRequest", "generate_content_request")
    contents = (inner or body).get("contents") if isinstance(inner or body, dict) else None
    if not isinstance(contents, list):
        raise BadRequest("* CountTokensRequest: contents or generateContentRequest is required")
    counted = [text for content in contents for text in texts(content)]
    system = _system_text(inner or body)  # as generateContent counts it in promptTokenCount
    total = replies.count_tokens(" ".join(counted + ([system] if system else [])))
    return jsonify({"totalTokens": total, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}]})


def embedding_values(text):
    """replies.EMBEDDING_SIZE numbers in [-1, 1), the same for the same text in every process."""
    values = []
    for block in range(0, replies.EMBEDDING_SIZE, 16):
        digest = hashlib.sha256(f"{block}|{text}".encode()).digest()
        values += [(int.from_bytes(digest[i:i + 2], "big") % 2000 - 1000) / 1000.0 for i in range(0, 32, 2)]
    return values[:replies.EMBEDDING_SIZE]


def _embedding(content):
    return {"values": embedding_values(" ".join(texts(content)))}


def _embed(state, model, body, key=None):
    return jsonify({"embedding": _embedding(body.get("content") or {})})


def _batch_embed(state, model, body, key=None):
    requests_ = body.get("requests")
    if not isinstance(requests_, list):
        raise BadRequest("* BatchEmbedContentsRequest.requests: requests is not specified")
    return jsonify({"embeddings": [_embedding(r.get("content") or {}) for r in requests_]})


ACTIONS = {
    "generateContent": _generate,
    "streamGenerateContent": stream,
    "countTokens": _count_tokens,
    "embedContent": _embed,
    "batchEmbedContents": _batch_embed,
}

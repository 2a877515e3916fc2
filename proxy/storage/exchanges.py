"""Recording a native exchange: its request-log row, the exchange, bodies, and the metrics row."""
import json
import logging

from ..compression import compress
from ..wire.headers import redacted
from ..wire.references import TOKEN_TEXT
from ..wire.routes import GENERATION_ACTIONS
from ..wire.stream import summarize_text
from .records import ExchangeBodyRecord, ExchangeRecord, MetricRecord
from .recorder import request_record

log = logging.getLogger(__name__)

OPENAI_CHAT = ("openai", "chat", "completions")  # a generation too, in OpenAI's shape
_MESSAGE_MAX = 2000  # characters of an error message kept


def _compress(data):
    return compress(data) if data else None


def _generation_settings(call):
    if call.openai and call.payload is not None:
        payload = call.payload
        return {"temperature": payload.get("temperature"), "topP": payload.get("top_p"),
                "maxOutputTokens": payload.get("max_completion_tokens", payload.get("max_tokens"))}
    if call.action not in GENERATION_ACTIONS or call.payload is None:
        return {}
    config = call.payload.get("generationConfig") or call.payload.get("generation_config") or {}
    return config if isinstance(config, dict) else {}


def _scrub(data, secrets):
    for secret in secrets:
        if secret and secret.encode() in data:
            data = data.replace(secret.encode(), b"[redacted]")
    if b"auth_tokens/" in data:
        data = TOKEN_TEXT.sub(b"auth_tokens/[redacted]", data)
    return data


def _aborted(stream):
    """How the stream ended short, if it did: `client` or `upstream`."""
    return None if stream.finished else ("upstream" if stream.upstream_broke else "client")


def build_rows(state, call, reply, stream, error, secrets):
    """The record of a native exchange (see storage.records): what was asked, what came back, and how."""
    summary = summarize_text(stream.capture.parse_text())
    usage = summary["usage"]
    settings = _generation_settings(call)
    aborted = _aborted(stream)
    record = request_record(state, call.route.template, call.method, error.status if error else reply.status,
                            ttfb_ms=stream.ttfb_ms, streamed=call.streaming)
    record.with_attempts(error.attempts if error else reply.attempts)
    record.model_requested = call.model
    record.model_used = (reply.model if reply else None) or summary["model_version"]
    _add_usage(record, usage, summary["finish_reason"], settings)
    record.error_code, record.error_message = _error_of(error, aborted, summary["error"])
    record.exchange = _exchange(call, reply, stream, aborted, settings, usage, secrets)
    if _counts_in_metrics(record, call, aborted, usage):
        record.metric = MetricRecord(
            timestamp=record.created_at, prompt_tokens=usage.prompt or 0,
            completion_tokens=usage.candidates or 0, total_tokens=usage.total or 0,
            temperature=record.temperature, max_output_tokens=record.max_output_tokens)
    return record


def _counts_in_metrics(record, call, aborted, usage):
    """A whole generation Gemini answered with its usage (metrics count Gemini's work, not the cache's)."""
    generates = call.action in GENERATION_ACTIONS or call.route.segments == OPENAI_CHAT
    return record.status_code == 200 and not aborted and bool(usage) and record.cache_status != "HIT" and generates


def _add_usage(record, usage, finish_reason, settings):
    record.with_usage(usage)
    record.token_source = "usage_metadata" if usage else None
    record.finish_reason = str(finish_reason) if finish_reason is not None else None
    record.temperature = settings.get("temperature")
    record.max_output_tokens = settings.get("maxOutputTokens", settings.get("max_output_tokens"))


def _error_of(error, aborted, answered):
    """(error code, message): the proxy's failure, a stream cut short, or the error Gemini's body carried."""
    if error:
        return error.google_status, error.message
    if aborted:
        return f"STREAM_ABORTED_{aborted.upper()}", None
    if answered:
        return str(answered.get("status") or answered.get("code")), str(answered.get("message", ""))[:_MESSAGE_MAX]
    return None, None


def _exchange(call, reply, stream, aborted, settings, usage, secrets):
    exchange = ExchangeRecord(
        path=call.route.upstream(), query=call.query.stored(), action=call.action,
        stream_format=("sse" if call.query.sse or call.openai else "json") if call.streaming else None,
        key_source=call.key.source, upstream_status=reply.status if reply else None, aborted=aborted,
        request_headers=json.dumps(redacted(call.client_headers)),
        response_headers=json.dumps(redacted(reply.headers)) if reply else None,
        request_bytes=len(call.body), response_bytes=stream.capture.total,
        top_p=settings.get("topP"), top_k=settings.get("topK"),
        thoughts_tokens=usage.thoughts, cached_tokens=usage.cached)
    cap = stream.capture.cap
    if cap:
        exchange.body = ExchangeBodyRecord(
            request_body=_compress(_scrub(call.body[:cap], secrets)),
            response_body=_compress(_scrub(stream.capture.stored(), secrets)),
            request_truncated=len(call.body) > cap, response_truncated=stream.capture.truncated)
    return exchange


def record_exchange(app, state, call, reply, stream, error):
    """Runs when the response is closed, after the client has its last byte; never raises."""
    try:
        secrets = list(app.config["GEMINI_API_KEYS"]) + ([call.key.key] if call.key.key else [])
        entry = build_rows(state, call, reply, stream, error, secrets)
    except Exception:  # nothing was recorded: building the record touches no database
        log.exception("could not build the record of native exchange %s", state.request_id)
        return
    records = app.extensions["records"]
    records.finished(entry)
    records.submit(entry)

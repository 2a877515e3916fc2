"""Recording a native exchange: its request-log row, the exchange, bodies, and the metrics row."""
import json
import logging

from ..access.limits import count_usage
from ..compression import compress
from ..observability.prometheus import observe
from ..passthrough.capture import iter_json_objects, summarize
from ..passthrough.headers import redacted
from ..wire.routes import GENERATION_ACTIONS
from .recorder import attempt_rows

log = logging.getLogger(__name__)

OPENAI_CHAT = ("openai", "chat", "completions")  # a generation too, in OpenAI's shape


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
    return data


def build_rows(context, call, reply, stream, error, secrets):
    """The record of a native exchange (see storage.batch)."""
    summary = summarize(iter_json_objects(stream.capture.parse_text()))
    usage = summary["usage"] or {}
    settings = _generation_settings(call)
    status = error.status if error else reply.status
    aborted = None if stream.finished else ("upstream" if stream.upstream_broke else "client")
    attempts = error.attempts if error else reply.attempts
    entry = {
        "request_id": context["request_id"], "created_at": context["started_at"], "route": context["route"],
        "client_id": context["client_id"], "cache_status": context.get("cache_status"),
        "method": call.method, "model_requested": call.model,
        "model_used": (reply.model if reply else None) or summary["model_version"],
        "status_code": status, "latency_ms": context["elapsed_ms"](), "ttfb_ms": stream.ttfb_ms,
        "upstream_latency_ms": sum(a.latency_ms for a in attempts) if attempts else None,
        "attempt_count": len(attempts), "streamed": call.streaming,
        "prompt_tokens": usage.get("promptTokenCount"), "completion_tokens": usage.get("candidatesTokenCount"),
        "total_tokens": usage.get("totalTokenCount"), "token_source": "usage_metadata" if usage else None,
        "finish_reason": str(summary["finish_reason"]) if summary["finish_reason"] is not None else None,
        "temperature": settings.get("temperature"),
        "max_output_tokens": settings.get("maxOutputTokens", settings.get("max_output_tokens")),
        "error_code": None, "error_message": None,
        "attempts": attempt_rows(attempts), "metric": None,
    }
    if error:
        entry["error_code"], entry["error_message"] = error.google_status, error.message
    elif aborted:
        entry["error_code"] = f"STREAM_ABORTED_{aborted.upper()}"
    elif summary["error"]:
        entry["error_code"] = str(summary["error"].get("status") or summary["error"].get("code"))
        entry["error_message"] = str(summary["error"].get("message", ""))[:2000]
    exchange = {
        "path": call.route.upstream(), "query": call.query.stored(), "action": call.action,
        "stream_format": ("sse" if call.query.sse or call.openai else "json") if call.streaming else None,
        "key_source": call.key.source, "upstream_status": reply.status if reply else None, "aborted": aborted,
        "request_headers": json.dumps(redacted(call.client_headers)),
        "response_headers": json.dumps(redacted(reply.headers)) if reply else None,
        "request_bytes": len(call.body), "response_bytes": stream.capture.total,
        "top_p": settings.get("topP"), "top_k": settings.get("topK"),
        "thoughts_tokens": usage.get("thoughtsTokenCount"), "cached_tokens": usage.get("cachedContentTokenCount"),
        "body": None,
    }
    cap = stream.capture.cap
    if cap:
        exchange["body"] = {
            "request_body": _compress(_scrub(call.body[:cap], secrets)),
            "response_body": _compress(_scrub(stream.capture.stored(), secrets)),
            "request_truncated": len(call.body) > cap, "response_truncated": stream.capture.truncated,
        }
    entry["exchange"] = exchange
    served_by_gemini = context.get("cache_status") != "HIT"  # metrics count Gemini's work
    generation = call.action in GENERATION_ACTIONS or call.route.segments == OPENAI_CHAT
    if status == 200 and not aborted and usage and served_by_gemini and generation:
        entry["metric"] = {
            "timestamp": context["started_at"], "prompt_tokens": usage.get("promptTokenCount", 0),
            "completion_tokens": usage.get("candidatesTokenCount", 0), "total_tokens": usage.get("totalTokenCount", 0),
            "temperature": entry["temperature"], "max_output_tokens": entry["max_output_tokens"],
        }
    return entry


def record_exchange(app, context, call, reply, stream, error):
    """Runs when the response is closed, after the client has its last byte; never raises."""
    try:
        secrets = list(app.config["GEMINI_API_KEYS"]) + ([call.key.key] if call.key.key else [])
        entry = build_rows(context, call, reply, stream, error, secrets)
    except Exception:  # nothing was recorded: building the record touches no database
        log.exception("could not build the record of native exchange %s", context["request_id"])
        return
    observe(entry)
    count_usage(app, entry)
    app.extensions["records"].submit(entry)

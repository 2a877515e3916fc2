"""Records one request-log row per generation request, its attempts, and the spec's metric row."""
from functools import partial

from flask import current_app, g, request

from ..access.limits import count_usage
from ..observability.prometheus import observe


def should_record():
    """Generation APIs; native calls record themselves unless they failed before forwarding."""
    return g.get("area") in ("api", "native") and request.method != "OPTIONS" and not g.get("native_recorded")


UNPARSED_NATIVE = "/{unparsed}"  # a native path refused before it was understood: never the client's bytes


def _route():
    if g.get("area") == "native":
        native = g.get("native")
        return native.route.template if native is not None else UNPARSED_NATIVE
    return request.url_rule.rule if request.url_rule else request.path


def attempt_rows(attempts):
    """The attempts table's columns for the service's attempt records, on either API."""
    return [{"number": a.number, "started_at": a.started_at, "model": a.model, "key_id": a.key_id,
             "outcome": a.outcome, "status_code": a.status_code, "error_code": a.error_code,
             "error_message": a.error_message, "latency_ms": a.latency_ms} for a in attempts]


def build_entry(response):
    """The record of this request (see storage.batch), from what the resource and error handler left in `g`."""
    generation = g.get("generation")
    request_ = g.get("generation_request")
    error = g.get("error")
    attempts = generation.attempts if generation else (error.attempts if error else [])
    entry = {
        "request_id": g.request_id,
        "created_at": g.started_at,
        "route": _route(),
        "client_id": g.client.id if g.get("client") else None,
        "method": request.method,
        "model_requested": g.get("model_requested"),
        "model_used": generation.model if generation else (attempts[-1].model if attempts else None),
        "status_code": response.status_code,
        "error_code": error.code if error else None,
        "error_message": error.message[:2000] if error else None,
        "latency_ms": g.elapsed_ms(),
        "upstream_latency_ms": sum(a.latency_ms for a in attempts) if attempts else None,
        "attempt_count": len(attempts),
        "cache_status": g.get("cache_status"),
        "temperature": request_.temperature if request_ else None,
        "max_output_tokens": request_.max_output_tokens if request_ else None,
        "attempts": attempt_rows(attempts),
        "metric": None,
        "exchange": None,
    }
    if generation:
        completion = generation.completion
        entry.update(prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens,
                     total_tokens=completion.total_tokens, token_source=completion.token_source,
                     finish_reason=completion.finish_reason)
        if response.status_code == 200 and g.get("cache_status") != "HIT":  # metrics count Gemini's work
            entry["metric"] = {
                "timestamp": g.started_at,
                "prompt_tokens": completion.prompt_tokens or 0,
                "completion_tokens": completion.completion_tokens or 0,
                "total_tokens": completion.total_tokens or 0,
                "temperature": entry["temperature"],
                "max_output_tokens": entry["max_output_tokens"],
            }
    return entry


def record(response):
    """after_request hook: builds the record now and hands it to the writer once the client has the
    response, so no database write is on the request's path. Never changes the client's answer."""
    if not should_record():
        return response
    entry = build_entry(response)
    observe(entry)
    count_usage(current_app._get_current_object(), entry)
    response.call_on_close(partial(current_app.extensions["records"].submit, entry))
    return response

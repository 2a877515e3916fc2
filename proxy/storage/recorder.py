"""Writes one request-log row per generation request, its attempts, and the spec's metric row."""
from flask import current_app, g, request

from models import Attempt, Metric, RequestLog

from ..observability.prometheus import observe
from ..passthrough.forwarder import native_route
from .writer import persist


def should_record():
    """Generation APIs; native calls record themselves unless they failed before forwarding."""
    return g.get("area") in ("api", "native") and request.method != "OPTIONS" and not g.get("native_recorded")


def _route():
    if g.get("area") == "native":
        version, _, path = request.path.lstrip("/").partition("/")
        return native_route(version, path)
    return request.url_rule.rule if request.url_rule else request.path


def attempt_rows(attempts):
    """Database rows for the service's attempt records, on either API."""
    return [Attempt(number=a.number, started_at=a.started_at, model=a.model, key_id=a.key_id, outcome=a.outcome,
                    status_code=a.status_code, error_code=a.error_code, error_message=a.error_message,
                    latency_ms=a.latency_ms) for a in attempts]


def build_entry(response):
    """The request log row for this request, from what the resource and error handler left in `g`."""
    generation = g.get("generation")
    request_ = g.get("generation_request")
    error = g.get("error")
    attempts = generation.attempts if generation else (error.attempts if error else [])
    entry = RequestLog(
        request_id=g.request_id,
        route=_route(),
        client_id=g.client.id if g.get("client") else None,
        method=request.method,
        model_requested=g.get("model_requested"),
        model_used=generation.model if generation else (attempts[-1].model if attempts else None),
        status_code=response.status_code,
        error_code=error.code if error else None,
        error_message=error.message[:2000] if error else None,
        latency_ms=g.elapsed_ms(),
        upstream_latency_ms=sum(a.latency_ms for a in attempts) if attempts else None,
        attempt_count=len(attempts),
        cache_status=g.get("cache_status"),
        temperature=request_.temperature if request_ else None,
        max_output_tokens=request_.max_output_tokens if request_ else None,
    )
    entry.attempts = attempt_rows(attempts)
    if generation:
        completion = generation.completion
        entry.prompt_tokens = completion.prompt_tokens
        entry.completion_tokens = completion.completion_tokens
        entry.total_tokens = completion.total_tokens
        entry.token_source = completion.token_source
        entry.finish_reason = completion.finish_reason
        if response.status_code == 200 and g.get("cache_status") != "HIT":  # metrics count Gemini's work
            entry.metric = Metric(
                timestamp=entry.created_at,
                prompt_tokens=completion.prompt_tokens or 0,
                completion_tokens=completion.completion_tokens or 0,
                total_tokens=completion.total_tokens or 0,
                temperature=entry.temperature,
                max_output_tokens=entry.max_output_tokens,
            )
    return entry


def record(response):
    """after_request hook: builds the record now and writes it once the client has the response, so
    the database write is off the request's critical path. Never changes the client's answer."""
    if not should_record():
        return response
    app = current_app._get_current_object()
    entry = build_entry(response)
    entry.created_at = g.started_at
    if entry.metric is not None:
        entry.metric.timestamp = g.started_at
    observe(entry)

    def write():
        with app.app_context():
            persist(entry)

    response.call_on_close(write)
    return response

"""The request log read back: a window's pages of requests, and one request whole with its attempts and exchange."""
import json
import zlib

from sqlalchemy import select

from models import RequestLog, db

from .facts import facts, plan, totals


def brief(entry):
    """One request's row as the request log's pages and the error report list it."""
    return {
        "request_id": entry.request_id, "created_at": entry.created_at, "route": entry.route,
        "method": entry.method, "client_id": entry.client_id, "model_requested": entry.model_requested,
        "model_used": entry.model_used, "status_code": entry.status_code, "error_code": entry.error_code,
        "error_message": entry.error_message, "latency_ms": entry.latency_ms, "ttfb_ms": entry.ttfb_ms,
        "prompt_tokens": entry.prompt_tokens, "completion_tokens": entry.completion_tokens,
        "total_tokens": entry.total_tokens, "attempt_count": entry.attempt_count, "streamed": entry.streamed,
        "finish_reason": entry.finish_reason, "cache_status": entry.cache_status,
    }


OUTCOMES = ("ok", "error")  # a status below 400, or 400 and up: the log page's "errors only"


def request_page(window, page, page_size, error_code=None, outcome=None):
    """One page of the log, newest first; `total` counts every row the filters match (rollups included)."""
    source = facts(window, plan(window))
    conditions, counted = list(window.conditions()), []
    if error_code:
        conditions.append(RequestLog.error_code == error_code)
        counted.append(source.c.error_code == error_code)
    if outcome:
        failed = outcome == "error"
        conditions.append(RequestLog.status_code >= 400 if failed else RequestLog.status_code < 400)
        counted.append(source.c.status_code >= 400 if failed else source.c.status_code < 400)
    total = totals(source, where=counted)[0]["requests"] or 0
    entries = db.session.execute(select(RequestLog).where(*conditions).order_by(
        RequestLog.created_at.desc(), RequestLog.id.desc()).offset((page - 1) * page_size).limit(page_size)).scalars()
    return {"window": window.describe(), "page": page, "page_size": page_size, "total": total,
            "requests": [brief(entry) for entry in entries]}


def request_detail(request_id):
    entry = db.session.execute(select(RequestLog).where(RequestLog.request_id == request_id)).scalar_one_or_none()
    if entry is None:
        return None
    detail = brief(entry)
    detail.update(upstream_latency_ms=entry.upstream_latency_ms, temperature=entry.temperature,
                  max_output_tokens=entry.max_output_tokens, token_source=entry.token_source,
                  attempts=[{"number": a.number, "started_at": a.started_at, "model": a.model, "key_id": a.key_id,
                             "outcome": a.outcome, "status_code": a.status_code, "error_code": a.error_code,
                             "error_message": a.error_message, "latency_ms": a.latency_ms}
                            for a in entry.attempts])
    exchange = entry.exchange
    if exchange is not None:
        text = lambda blob: zlib.decompress(blob).decode("utf-8", errors="replace") if blob else None  # noqa: E731
        body = exchange.body
        detail["exchange"] = {
            "path": exchange.path, "query": exchange.query, "action": exchange.action,
            "stream_format": exchange.stream_format, "key_source": exchange.key_source,
            "upstream_status": exchange.upstream_status, "aborted": exchange.aborted,
            "request_headers": json.loads(exchange.request_headers or "{}"),
            "response_headers": json.loads(exchange.response_headers or "null"),
            "request_bytes": exchange.request_bytes, "response_bytes": exchange.response_bytes,
            "request_body": text(body.request_body) if body else None,
            "response_body": text(body.response_body) if body else None,
            "request_truncated": body.request_truncated if body else None,
            "response_truncated": body.response_truncated if body else None,
        }
    return detail

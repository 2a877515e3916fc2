"""A Live session's record: one request-log row, in the same type as every other request's, with the
session's attempts (one per key tried), tokens by kind, how it ended, and its frames (media as sizes)."""
import json
import logging
from datetime import datetime, timezone

from ..compression import compress
from ..storage.records import AttemptRow, ExchangeBodyRecord, ExchangeRecord
from ..storage.recorder import request_record
from ..wire.headers import redacted
from ..wire.usage import Usage
from . import relay

log = logging.getLogger(__name__)

# The status a session's record carries: 101 for one that ran and ended as sessions do; else what an
# HTTP call refused for the same reason would have had.
_STATUS = {relay.REFUSED: 400, relay.LIMIT: 429, relay.QUOTA: 429, relay.BUDGET: 429, relay.ERROR: 502}
_UPSTREAM_STATUS = {1007: 400, 1008: 400, 1011: 502, 1013: 503}  # Gemini's close codes
_MESSAGE_MAX = 2000


def _status(notes):
    if notes.ended in _STATUS:
        return _STATUS[notes.ended]
    if notes.ended == relay.UPSTREAM_CLOSED:
        return _UPSTREAM_STATUS.get(notes.close_code, 101)
    return 101


def _error_code(notes, status):
    if status < 400:
        return None
    head = notes.close_reason.split(":", 1)[0].strip()
    return head if head.isupper() and len(head) <= 64 else f"LIVE_{notes.ended.upper()}"


def build_record(state, request, notes, frames, request_headers, secrets):
    status = _status(notes)
    usage = notes.usage
    record = request_record(state, request.endpoint.path, "GET", status, streamed=True)
    record.model_requested = record.model_used = notes.model
    record.attempts = [AttemptRow(number, datetime.fromtimestamp(started, timezone.utc).replace(tzinfo=None),
                                  notes.model, key_id, outcome, code, None, (message or "")[:500] or None, ms)
                       for number, (key_id, outcome, code, message, started, ms) in enumerate(notes.attempts, 1)]
    record.attempt_count = len(record.attempts)
    record.upstream_latency_ms = sum(a.latency_ms for a in record.attempts) if record.attempts else None
    record.finish_reason = notes.ended
    record.error_code = _error_code(notes, status)
    record.error_message = notes.close_reason[:_MESSAGE_MAX] if record.error_code else None
    if usage.reports:
        record.with_usage(Usage(prompt=usage.prompt, candidates=usage.response, total=usage.total,
                                cached=usage.cached or None, thoughts=usage.thoughts or None,
                                tool_use_prompt=usage.tool_use_prompt or None))
        record.token_source = "usage_metadata"
    exchange = ExchangeRecord(
        path=request.endpoint.path, key_source=notes.key_source, action=request.endpoint.action,
        stream_format="ws", upstream_status=101 if any(a[1] == "ok" for a in notes.attempts) else None,
        aborted={relay.CLIENT_CLOSED: None, relay.UPSTREAM_CLOSED: None}.get(notes.ended, notes.ended),
        request_headers=json.dumps(redacted(request_headers)),
        turns=notes.turns, client_messages=notes.client_messages, server_messages=notes.server_messages,
        media_in_bytes=notes.media_in, media_out_bytes=notes.media_out,
        close_code=notes.close_code if isinstance(notes.close_code, int) else None,
        request_bytes=notes.bytes_in, response_bytes=notes.bytes_out,
        thoughts_tokens=usage.thoughts or None, cached_tokens=usage.cached or None)
    if frames.cap:
        stored = frames.stored()
        for secret in secrets:
            if secret and secret.encode() in stored:
                stored = stored.replace(secret.encode(), b"[redacted]")
        exchange.body = ExchangeBodyRecord(response_body=compress(stored) if stored else None,
                                           response_truncated=frames.truncated)
    record.exchange = exchange
    return record


def record_session(app, state, request, notes, frames):
    """Hand the session's record to the writer; never raises."""
    from flask import request as incoming
    try:
        secrets = list(app.config["GEMINI_API_KEYS"]) + [v for _, v in [request.presented.gemini or (None, "")]]
        entry = build_record(state, request, notes, frames, dict(incoming.headers), secrets)
    except Exception:  # noqa: BLE001 - building touches no database; a bug here must not end the worker
        log.exception("could not build the record of Live session %s", state.request_id)
        return
    records = app.extensions["records"]
    records.finished(entry)
    records.submit(entry)

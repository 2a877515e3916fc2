"""Exports, retention and backups of what the proxy recorded."""
import csv
import json
import sqlite3
import zlib
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, select

from models import Exchange, ExchangeBody, Metric, RequestLog, db

from ..cache.answers import fold_body
from ..periodic import one_per_deployment, run_apart, run_every
from ..storage.sqlite_turns import serving_on_gevent
from .facts import ONE_HOUR, floor_hour, hour_text
from .rollups import forget


CSV_COLUMNS = ["request_id", "created_at", "route", "method", "client_id", "model_requested", "model_used",
               "status_code", "error_code", "latency_ms", "ttfb_ms", "upstream_latency_ms", "attempt_count",
               "prompt_tokens", "completion_tokens", "total_tokens", "token_source", "finish_reason", "temperature",
               "max_output_tokens", "streamed", "cache_status", "cached_tokens", "thoughts_tokens",
               "tool_use_prompt_tokens", "service_tier", "batch", "cost_usd", "price_source"]


def _utcnow():
    return datetime.now(timezone.utc).replace(tzinfo=None)


def export_csv(handle, window):
    """Every request in the window as a CSV row; returns how many."""
    writer = csv.writer(handle)
    writer.writerow(CSV_COLUMNS)
    count = 0
    query = select(RequestLog).where(*window.conditions()).order_by(RequestLog.created_at, RequestLog.id)
    for entry in db.session.execute(query.execution_options(yield_per=2000)).scalars():
        writer.writerow([getattr(entry, column) for column in CSV_COLUMNS])
        count += 1
    return count


def export_jsonl(handle, window):
    """Successful native generations as tuning examples: the request's turns plus the model's answer."""
    query = (select(RequestLog, ExchangeBody).join(Exchange, Exchange.request_log_id == RequestLog.id)
             .join(ExchangeBody, ExchangeBody.exchange_id == Exchange.id)
             .where(*window.conditions(), RequestLog.status_code == 200,
                    Exchange.action.in_(("generateContent", "streamGenerateContent")),
                    ExchangeBody.response_truncated.is_(False), ExchangeBody.request_truncated.is_(False)))
    count = 0
    for entry, body in db.session.execute(query.order_by(RequestLog.created_at)):
        try:
            request = json.loads(zlib.decompress(body.request_body))
        except (TypeError, ValueError, zlib.error):
            continue
        answer = fold_body(zlib.decompress(body.response_body)) if body.response_body else None
        contents = request.get("contents")
        if answer is None or not isinstance(contents, list):
            continue  # not a complete text answer, or not a request we can read back
        example = {"contents": contents + [answer["candidates"][0]["content"]]}
        system = request.get("systemInstruction") or request.get("system_instruction")
        if system:
            example["systemInstruction"] = system
        example["metadata"] = {"request_id": entry.request_id, "model": entry.model_used,
                               "created_at": entry.created_at.isoformat() + "Z"}
        handle.write(json.dumps(example, ensure_ascii=False) + "\n")
        count += 1
    return count


# Rows deleted per transaction. A first prune of months of history in one transaction held SQLite's
# write lock for minutes, and every worker's records waited behind it (past the busy timeout, in the
# spool); between these, writers get their turn.
DELETE_BATCH = 5_000


def prune(days, body_days, now=None, batch=DELETE_BATCH):
    """Delete requests (and their attempts, exchanges, bodies) older than `days`, bodies older than
    `body_days`, and metrics older than `days`; 0 keeps that kind forever. Returns what went. Deletes
    `batch` rows a transaction; stopped part way, the next run goes on from there."""
    now = now or _utcnow()
    removed = {"requests": 0, "metrics": 0, "bodies": 0}
    if body_days:
        cutoff = now - timedelta(days=body_days)
        old = select(Exchange.id).join(RequestLog, Exchange.request_log_id == RequestLog.id).where(
            RequestLog.created_at < cutoff)
        removed["bodies"] = _delete_in_batches(ExchangeBody.id, ExchangeBody.exchange_id.in_(old), batch)
    if days:
        cutoff = now - timedelta(days=days)
        # Foreign keys cascade to attempts, exchanges and their bodies.
        removed["requests"] = _delete_in_batches(RequestLog.id, RequestLog.created_at < cutoff, batch)
        removed["metrics"] = _delete_in_batches(Metric.id, Metric.timestamp < cutoff, batch)
        # Last, so that no rollup of a deleted hour is rebuilt meanwhile; the hour the cutoff falls in
        # is rebuilt from what remains of it.
        forget(end_text=hour_text(floor_hour(cutoff) + ONE_HOUR))
        db.session.commit()
    return removed


def _delete_in_batches(key, condition, batch):
    removed = 0
    while True:
        chosen = select(key).where(condition).limit(batch)
        count = db.session.execute(delete(key.table).where(key.in_(chosen))).rowcount
        db.session.commit()
        removed += count
        if count < batch:
            return removed


def prune_once(days, body_days):
    """One background run: what it removed, for the log, or None."""
    removed = prune(days, body_days)
    return f"pruned {removed}" if any(removed.values()) else None


def start_periodic_prune(app, interval, days, body_days, stop=None):
    """Prune every `interval` seconds in the background until `stop` is set; one worker of the
    deployment at a time (it is idempotent, but a second would only add load)."""
    def job(_stop):
        if serving_on_gevent():
            return run_apart(app, "retention")
        with one_per_deployment(app, "retention") as mine:
            return prune_once(days, body_days) if mine else None

    return run_every(app, "retention", interval, job, stop)


def backup_sqlite(database_path, target_path, pages_per_step=1024):
    """A consistent copy of a live SQLite database (its online backup API), while writers go on."""
    source = sqlite3.connect(database_path, timeout=30)
    target = sqlite3.connect(target_path)
    try:
        with target:
            source.backup(target, pages=pages_per_step, sleep=0.005)
        ok = target.execute("PRAGMA integrity_check").fetchone()[0]
        if ok != "ok":
            raise RuntimeError(f"the backup failed its integrity check: {ok}")
    finally:
        target.close()
        source.close()

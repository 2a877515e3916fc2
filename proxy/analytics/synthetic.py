"""Realistic synthetic history for benchmarks: diurnal traffic, a model mix, failures, retries."""
import math
import random
import uuid
from datetime import datetime, timedelta, timezone

from models import Attempt, Metric, RequestLog, db

from .facts import ONE_HOUR, hour_text
from .rollups import forget

_MODELS = [("gemini-2.5-flash", 0.70), ("gemini-2.5-flash-lite", 0.22), ("gemini-2.5-pro", 0.08)]
_ROUTES = [("/gemini/generate", 0.45), ("/v1beta/models/{model}:generateContent", 0.25),
           ("/v1beta/models/{model}:streamGenerateContent", 0.25), ("/gemini-proxy", 0.05)]
_FAILURES = [(502, "UPSTREAM_ERROR", 0.008), (429, "QUOTA_EXHAUSTED", 0.006), (400, "INVALID_REQUEST", 0.006),
             (504, "DEADLINE_EXCEEDED", 0.002)]
_BATCH = 20_000


def _pick(rng, weighted):
    point, total = rng.random(), 0.0
    for value, weight in weighted:
        total += weight
        if point < total:
            return value
    return weighted[-1][0]


def _rows(rng, count, end, days):
    span = days * 86400
    for number in range(count):
        # Busier in the working day (UTC 08-18) than at night.
        while True:
            offset = rng.random() * span
            moment = end - timedelta(seconds=offset)
            if rng.random() < 0.35 + 0.65 * (0.5 + 0.5 * math.sin((moment.hour - 7) / 24 * 2 * math.pi)):
                break
        model = _pick(rng, _MODELS)
        route = _pick(rng, _ROUTES)
        status, code = 200, None
        roll = rng.random()
        for failure_status, failure_code, share in _FAILURES:
            if roll < share:
                status, code = failure_status, failure_code
                break
            roll -= share
        prompt = int(rng.lognormvariate(5.5, 1.0))
        completion = int(rng.lognormvariate(5.0, 0.8))
        latency = rng.lognormvariate(6.6, 0.6)  # about 750 ms median
        retried = rng.random() < 0.03
        yield {"request_id": uuid.UUID(int=rng.getrandbits(128)).hex, "created_at": moment, "route": route,
               "method": "POST", "model_used": model, "model_requested": None, "status_code": status,
               "error_code": code, "latency_ms": latency, "upstream_latency_ms": latency * 0.97,
               "ttfb_ms": latency * 0.3 if "stream" in route else None, "attempt_count": 2 if retried else 1,
               "streamed": "stream" in route, "prompt_tokens": prompt if status == 200 else None,
               "completion_tokens": completion if status == 200 else None,
               "total_tokens": prompt + completion if status == 200 else None,
               "token_source": "usage_metadata", "finish_reason": "STOP" if status == 200 else None}


def seed(count, days=30, seed_value=42, end=None, progress=None):
    """Insert `count` requests spread over the last `days` days, with attempts and metrics."""
    rng = random.Random(seed_value)
    end = end or datetime.now(timezone.utc).replace(tzinfo=None)
    connection = db.session.connection()
    inserted, batch = 0, []
    next_id = (db.session.query(db.func.max(RequestLog.id)).scalar() or 0) + 1
    for row in _rows(rng, count, end, days):
        row["id"] = next_id
        next_id += 1
        batch.append(row)
        if len(batch) >= _BATCH:
            inserted += _flush(connection, batch)
            batch = []
            if progress:
                progress(inserted)
    inserted += _flush(connection, batch)
    # Hours that already had rollups now have more rows than their rollups say.
    forget(hour_text(end - timedelta(days=days) - ONE_HOUR), hour_text(end + ONE_HOUR))
    db.session.commit()
    db.session.execute(db.text("ANALYZE"))  # statistics for the planner, as a long-running server would have
    db.session.commit()
    return inserted


def _flush(connection, batch):
    if not batch:
        return 0
    connection.execute(RequestLog.__table__.insert(), batch)
    attempts = []
    for row in batch:
        first_model = "gemini-2.5-flash" if row["attempt_count"] == 2 else row["model_used"]
        attempts.append({"request_log_id": row["id"], "number": 1, "started_at": row["created_at"],
                         "model": first_model, "key_id": "key-synthetic", "latency_ms": row["upstream_latency_ms"],
                         "outcome": "transient" if row["attempt_count"] == 2 else
                         ("ok" if row["status_code"] == 200 else "transient"),
                         "status_code": 503 if row["attempt_count"] == 2 else row["status_code"]})
        if row["attempt_count"] == 2:
            attempts.append({"request_log_id": row["id"], "number": 2, "started_at": row["created_at"],
                             "model": row["model_used"], "key_id": "key-synthetic", "outcome": "ok",
                             "latency_ms": row["upstream_latency_ms"], "status_code": 200})
    connection.execute(Attempt.__table__.insert(), attempts)
    metrics = [{"timestamp": r["created_at"], "prompt_tokens": r["prompt_tokens"],
                "completion_tokens": r["completion_tokens"], "total_tokens": r["total_tokens"],
                "temperature": None, "max_output_tokens": None} for r in batch if r["status_code"] == 200]
    if metrics:
        connection.execute(Metric.__table__.insert(), metrics)
    return len(batch)

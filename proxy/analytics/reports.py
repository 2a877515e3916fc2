"""The reports: exact aggregates over the request log within a window."""
import math
import statistics
from collections import defaultdict
from datetime import timedelta

from sqlalchemy import case, func, select

from models import ApiClient, Attempt, RequestLog, db

PERCENTILES = (50, 95, 99)
_ERROR = RequestLog.status_code >= 400
_HIT = RequestLog.cache_status == "HIT"
# Tokens and cost count Gemini's work: an answer from the cache is a saving, not usage.
_NOT_HIT = RequestLog.cache_status.is_(None) | (RequestLog.cache_status != "HIT")


def _gemini(column):
    return func.sum(case((_HIT, 0), else_=column))


def _count_rows(window):
    return select(func.count(), func.sum(case((_ERROR, 1), else_=0)), _gemini(RequestLog.prompt_tokens),
                  _gemini(RequestLog.completion_tokens), _gemini(RequestLog.total_tokens),
                  func.avg(RequestLog.latency_ms)).where(*window.conditions())


def percentiles(window, column=RequestLog.latency_ms, points=PERCENTILES):
    """Nearest-rank percentiles of `column` in the window, each one indexed ORDER BY ... OFFSET."""
    conditions = [*window.conditions(), column.isnot(None)]
    count = db.session.execute(select(func.count()).where(*conditions)).scalar_one()
    result = {}
    for point in points:
        if not count:
            result[f"p{point}"] = None
            continue
        rank = max(1, math.ceil(point / 100 * count))
        value = db.session.execute(select(column).where(*conditions).order_by(column).offset(rank - 1).limit(1))
        result[f"p{point}"] = round(value.scalar_one(), 3)
    return result


def _tokens_by_model(window, hits=False):
    query = select(RequestLog.model_used, func.sum(RequestLog.prompt_tokens), func.sum(RequestLog.completion_tokens),
                   func.count()).where(*window.conditions(), _HIT if hits else _NOT_HIT).group_by(RequestLog.model_used)
    return db.session.execute(query).all()


def cache_savings(window, prices):
    hits = _tokens_by_model(window, hits=True)
    consulted = db.session.execute(select(func.count()).where(
        *window.conditions(), RequestLog.cache_status.isnot(None))).scalar_one()
    count = sum(n for *_, n in hits)
    return {"lookups": consulted, "hits": count, "hit_rate": round(count / consulted, 6) if consulted else 0.0,
            "tokens_saved": sum((p or 0) + (c or 0) for _, p, c, _ in hits),
            "cost_saved_usd": round(sum(prices.cost(m, p, c) for m, p, c, _ in hits), 6)}


def summary(window, prices):
    requests, errors, prompt, completion, total, average = db.session.execute(_count_rows(window)).one()
    cost = sum(prices.cost(model, p, c) for model, p, c, _ in _tokens_by_model(window))
    return {
        "window": window.describe(),
        "requests": requests,
        "successes": requests - (errors or 0),
        "errors": errors or 0,
        "error_rate": round((errors or 0) / requests, 6) if requests else 0.0,
        "prompt_tokens": prompt or 0,
        "completion_tokens": completion or 0,
        "total_tokens": total or 0,
        "latency_ms": {"avg": round(average, 3) if average is not None else None, **percentiles(window)},
        "cost_usd": round(cost, 6),
        "cache": cache_savings(window, prices),
    }


def bucket_expression(unit):
    """The start of a row's hour or day, as text, in the database's own dialect."""
    if db.engine.dialect.name == "postgresql":
        return func.to_char(func.date_trunc(unit, RequestLog.created_at), "YYYY-MM-DD HH24:00:00")
    return func.strftime("%Y-%m-%d %H:00:00" if unit == "hour" else "%Y-%m-%d 00:00:00", RequestLog.created_at)


def buckets(window, unit):
    """Every bucket start in the window, so a series has no holes."""
    step = timedelta(hours=1) if unit == "hour" else timedelta(days=1)
    moment = window.start.replace(minute=0, second=0, microsecond=0)
    if unit == "day":
        moment = moment.replace(hour=0)
    while moment < window.end:
        yield moment.strftime("%Y-%m-%d %H:00:00")
        moment += step


def usage(window, group_by, prices):
    if group_by in ("hour", "day"):
        key = bucket_expression(group_by)
    elif group_by == "client":
        key = RequestLog.client_id
    else:
        key = {"model": RequestLog.model_used, "route": RequestLog.route}[group_by]
    query = select(key, RequestLog.model_used, func.count(), func.sum(case((_ERROR, 1), else_=0)),
                   func.sum(RequestLog.prompt_tokens), func.sum(RequestLog.completion_tokens),
                   func.sum(RequestLog.total_tokens)).where(*window.conditions()).group_by(key, RequestLog.model_used)
    groups = defaultdict(lambda: {"requests": 0, "errors": 0, "prompt_tokens": 0, "completion_tokens": 0,
                                  "total_tokens": 0, "cost_usd": 0.0})
    for value, model, count, errors, prompt, completion, total in db.session.execute(query):
        group = groups[value]
        group["requests"] += count
        group["errors"] += errors or 0
        group["prompt_tokens"] += prompt or 0
        group["completion_tokens"] += completion or 0
        group["total_tokens"] += total or 0
        group["cost_usd"] += prices.cost(model, prompt, completion)
    if group_by in ("hour", "day"):
        keys = list(buckets(window, group_by))
    else:
        keys = sorted(groups, key=lambda k: (-groups[k]["requests"], str(k)))
    names = _client_names(keys) if group_by == "client" else {}
    rows = []
    for key_value in keys:
        row = {"key": _label(key_value, group_by, names), **groups[key_value]}
        row["cost_usd"] = round(row["cost_usd"], 6)
        rows.append(row)
    return {"window": window.describe(), "group_by": group_by, "groups": rows}


def _client_names(ids):
    known = [i for i in ids if i is not None]
    if not known:
        return {}
    return dict(db.session.execute(select(ApiClient.id, ApiClient.name).where(ApiClient.id.in_(known))).all())


def _label(value, group_by, names):
    if value is None:
        return "(none)"
    if group_by in ("hour", "day"):
        return value.replace(" ", "T") + "Z"
    if group_by == "client":
        return f"{value}:{names.get(value, '?')}"
    return str(value)


def _nearest_rank(values, point):
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(1, math.ceil(point / 100 * len(ordered))) - 1], 3)


def performance(window, unit):
    key = bucket_expression(unit)
    query = select(key, RequestLog.latency_ms, RequestLog.ttfb_ms, RequestLog.upstream_latency_ms).where(
        *window.conditions())
    series = defaultdict(lambda: {"latency": [], "ttfb": [], "upstream": [], "overhead": []})
    for bucket, latency, ttfb, upstream in db.session.execute(query):
        entry = series[bucket]
        entry["latency"].append(latency)
        if ttfb is not None:
            entry["ttfb"].append(ttfb)
        if upstream is not None:
            entry["upstream"].append(upstream)
            entry["overhead"].append(max(0.0, latency - upstream))
    rows = []
    for bucket in buckets(window, unit):
        entry = series.get(bucket, {"latency": [], "ttfb": [], "upstream": [], "overhead": []})
        mean = lambda values: round(statistics.fmean(values), 3) if values else None  # noqa: E731
        rows.append({
            "bucket": bucket.replace(" ", "T") + "Z",
            "requests": len(entry["latency"]),
            "latency_ms": {f"p{p}": _nearest_rank(entry["latency"], p) for p in PERCENTILES},
            "ttfb_ms": {f"p{p}": _nearest_rank(entry["ttfb"], p) for p in PERCENTILES},
            "upstream_ms_avg": mean(entry["upstream"]),
            "overhead_ms_avg": mean(entry["overhead"]),
        })
    return {"window": window.describe(), "bucket": unit, "series": rows}


def errors(window, latest=10):
    by_code = db.session.execute(
        select(RequestLog.error_code, RequestLog.status_code, func.count()).where(*window.conditions(), _ERROR)
        .group_by(RequestLog.error_code, RequestLog.status_code).order_by(func.count().desc())).all()
    by_upstream = db.session.execute(
        select(Attempt.status_code, func.count()).join(RequestLog, Attempt.request_log_id == RequestLog.id)
        .where(*window.conditions(), Attempt.status_code >= 400).group_by(Attempt.status_code)
        .order_by(func.count().desc())).all()
    examples = db.session.execute(
        select(RequestLog).where(*window.conditions(), _ERROR).order_by(RequestLog.created_at.desc())
        .limit(latest)).scalars().all()
    return {
        "window": window.describe(),
        "by_code": [{"code": code or "(none)", "status": status, "count": count} for code, status, count in by_code],
        "by_upstream_status": [{"status": status, "count": count} for status, count in by_upstream],
        "latest": [_brief(entry) for entry in examples],
    }


def fallbacks(window, pool, chain):
    first = select(Attempt.request_log_id, Attempt.model).where(Attempt.number == 1).subquery()
    pairs = db.session.execute(
        select(first.c.model, RequestLog.model_used, func.count())
        .join(first, first.c.request_log_id == RequestLog.id).where(*window.conditions())
        .group_by(first.c.model, RequestLog.model_used)).all()
    attempted = sum(count for _, _, count in pairs)
    moved = [(a, b, n) for a, b, n in pairs if b is not None and a != b]
    retries, retried = db.session.execute(
        select(func.sum(RequestLog.attempt_count - 1), func.count())
        .where(*window.conditions(), RequestLog.attempt_count > 1)).one()
    outcomes = db.session.execute(
        select(Attempt.outcome, func.count()).join(RequestLog, Attempt.request_log_id == RequestLog.id)
        .where(*window.conditions()).group_by(Attempt.outcome)).all()
    now = pool.clock()
    answered = defaultdict(int)
    for _, model, count in moved:
        answered[model] += count
    return {
        "window": window.describe(),
        "requests_with_attempts": attempted,
        "first_model_failed": sum(n for _, _, n in moved),
        "first_model_failure_rate": round(sum(n for _, _, n in moved) / attempted, 6) if attempted else 0.0,
        "fallbacks": [{"from": a, "to": b, "count": n} for a, b, n in sorted(moved, key=lambda r: -r[2])],
        "answered_by": [{"model": m, "count": n} for m, n in sorted(answered.items(), key=lambda r: -r[1])],
        "retried_requests": retried or 0,
        "retries": retries or 0,
        "attempts_by_outcome": {outcome: count for outcome, count in outcomes},
        "cooldowns_now": [{"key_id": c.key_id, "model": c.model, "reason": c.reason,
                           "seconds_left": round(c.until - now, 1)} for c in pool.cooldowns()],
        "model_chain": chain,
    }


def costs(window, prices, chain):
    per_model = _tokens_by_model(window)
    cheapest = prices.cheapest(chain)
    models, actual_total, cheapest_total = [], 0.0, 0.0
    for model, prompt, completion, count in sorted(per_model, key=lambda r: str(r[0])):
        actual = prices.cost(model, prompt, completion)
        at_cheapest = prices.cost(cheapest, prompt, completion) if cheapest and model in chain else actual
        actual_total, cheapest_total = actual_total + actual, cheapest_total + at_cheapest
        price_in, price_out = prices.price(model)
        models.append({"model": model or "(none)", "requests": count, "prompt_tokens": prompt or 0,
                       "completion_tokens": completion or 0, "cost_usd": round(actual, 6),
                       "price_per_million": {"input": price_in, "output": price_out},
                       "priced": prices.known(model), "cost_at_cheapest_usd": round(at_cheapest, 6)})
    daily = usage(window, "day", prices)["groups"]
    return {
        "window": window.describe(),
        "total_cost_usd": round(actual_total, 6),
        "by_model": models,
        "by_day": [{"day": row["key"], "cost_usd": row["cost_usd"]} for row in daily],
        "cheapest_fallback_model": cheapest,
        "savings_if_cheapest_usd": round(actual_total - cheapest_total, 6),
    }


def anomalies(window, baseline_hours=24, threshold=3.0):
    """Hours whose volume, error rate, latency or tokens stand far outside the trailing baseline."""
    from .window import Window

    widened = Window(window.start - timedelta(hours=baseline_hours), window.end, window.model, window.route,
                     window.status, window.client)
    key = bucket_expression("hour")
    query = select(key, func.count(), func.sum(case((_ERROR, 1), else_=0)), func.avg(RequestLog.latency_ms),
                   func.sum(RequestLog.total_tokens)).where(*widened.conditions()).group_by(key)
    stats = {bucket: (count, errs or 0, latency, tokens or 0) for bucket, count, errs, latency, tokens
             in db.session.execute(query)}
    hours = list(buckets(widened, "hour"))
    found = []
    for position, hour in enumerate(hours):
        if position < baseline_hours or hour < window.start.strftime("%Y-%m-%d %H:00:00"):
            continue
        trailing = [stats.get(h, (0, 0, None, 0)) for h in hours[position - baseline_hours:position]]
        current = stats.get(hour, (0, 0, None, 0))
        reasons = _outliers(current, trailing, threshold)
        if reasons:
            found.append({"hour": hour.replace(" ", "T") + "Z", "requests": current[0], "reasons": reasons})
    return {"window": window.describe(), "baseline_hours": baseline_hours, "threshold_sigma": threshold,
            "anomalies": found}


def _outliers(current, trailing, threshold):
    count, errs, latency, tokens = current
    measures = {
        "requests": (count, [t[0] for t in trailing], 1.0),
        "total_tokens": (tokens, [t[3] for t in trailing], 10.0),
    }
    if count >= 10:
        measures["error_rate"] = (errs / count, [t[1] / t[0] for t in trailing if t[0] >= 10], 0.02)
    if latency is not None:
        measures["latency_ms_avg"] = (latency, [t[2] for t in trailing if t[2] is not None], None)
    reasons = []
    if sum(1 for t in trailing if t[0]) < 6:
        return reasons  # fewer than six active hours behind it: too little history to call anything unusual
    for name, (value, history, floor) in measures.items():
        if len(history) < 6:
            continue
        mean = statistics.fmean(history)
        spread = max(statistics.pstdev(history), floor if floor is not None else 0.1 * abs(mean), 1e-9)
        score = (value - mean) / spread
        if abs(score) >= threshold:
            direction = "above" if score > 0 else "below"
            reasons.append({"metric": name, "value": round(value, 4), "baseline_mean": round(mean, 4),
                            "baseline_std": round(statistics.pstdev(history), 4), "z": round(score, 2),
                            "reason": f"{name} {round(value, 2)} is {abs(round(score, 1))} sigma {direction} "
                                      f"the trailing {len(history)}-hour mean of {round(mean, 2)}"})
    return reasons


def _brief(entry):
    return {
        "request_id": entry.request_id, "created_at": entry.created_at, "route": entry.route,
        "method": entry.method, "client_id": entry.client_id, "model_requested": entry.model_requested,
        "model_used": entry.model_used, "status_code": entry.status_code, "error_code": entry.error_code,
        "error_message": entry.error_message, "latency_ms": entry.latency_ms, "ttfb_ms": entry.ttfb_ms,
        "prompt_tokens": entry.prompt_tokens, "completion_tokens": entry.completion_tokens,
        "total_tokens": entry.total_tokens, "attempt_count": entry.attempt_count, "streamed": entry.streamed,
        "finish_reason": entry.finish_reason, "cache_status": entry.cache_status,
    }


def request_page(window, page, page_size, error_code=None):
    conditions = list(window.conditions())
    if error_code:
        conditions.append(RequestLog.error_code == error_code)
    total = db.session.execute(select(func.count()).where(*conditions)).scalar_one()
    entries = db.session.execute(select(RequestLog).where(*conditions).order_by(
        RequestLog.created_at.desc(), RequestLog.id.desc()).offset((page - 1) * page_size).limit(page_size)).scalars()
    return {"window": window.describe(), "page": page, "page_size": page_size, "total": total,
            "requests": [_brief(entry) for entry in entries]}


def request_detail(request_id):
    import json
    import zlib

    entry = db.session.execute(select(RequestLog).where(RequestLog.request_id == request_id)).scalar_one_or_none()
    if entry is None:
        return None
    detail = _brief(entry)
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

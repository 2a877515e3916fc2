"""The reports: aggregates over the request log within a window, read through rollups where they exist."""
import json
from collections import defaultdict
from datetime import timedelta

from sqlalchemy import func, or_, select

from models import ApiClient, RequestLog, db

from .facts import (BATCH, COSTED, PERCENTILES, attempt_facts, day_of, facts, histogram_percentiles,
                    histograms_by_hour, hour_expression, nearest_rank, percentiles, plan, scope_of, totals)
from .pricing import SOURCE, usage_of
from .requestlog import brief

_ERROR = RequestLog.status_code >= 400


_KINDS = ("prompt_tokens", "completion_tokens", "cached_tokens", "thoughts_tokens", "tool_use_prompt_tokens")


def _row_cost(row, prices, stored=True, priced_as=None):
    """A row of sums' cost: the costs stored with its records, or for records written before costs were
    stored (costed false), their tokens at today's prices (no long-context prices: these are sums). With
    stored=False or priced_as, always at today's prices (what a cache hit saved, what another model costs)."""
    if stored and priced_as is None and row.get(COSTED):
        return row.get("cost_usd") or 0.0
    return prices.cost(priced_as or row["model_used"], usage_of(row), bool(row.get(BATCH)), long_context=False)


def _by_model(rows, hits, prices, priced_as=None):
    """{model: its requests, token kinds and cost} over Gemini's work (hits=False) or the cache's answers
    (their cost: what Gemini would have billed); the cost at `priced_as`'s prices when given (what the
    chain's cheapest model would have cost)."""
    result = defaultdict(lambda: dict.fromkeys(("requests", "batch_requests", "costed_at_read_time", *_KINDS,
                                                "cost"), 0))
    for row in rows:
        if (row["cache_status"] == "HIT") != hits:
            continue
        entry = result[row["model_used"]]
        entry["requests"] += row["requests"] or 0
        entry["batch_requests"] += (row["requests"] or 0) if row.get(BATCH) else 0
        entry["costed_at_read_time"] += 0 if row.get(COSTED) else (row["requests"] or 0)
        for name in _KINDS:
            entry[name] += row.get(name) or 0
        entry["cost"] += _row_cost(row, prices, stored=not hits, priced_as=priced_as)
    return result


def _model_rows(window, plan_):
    source = facts(window, plan_, billed=True)
    return totals(source, source.c.model_used, source.c.cache_status, source.c.batch, source.c.costed)


def cache_savings(rows, prices):
    hits = _by_model(rows, hits=True, prices=prices)
    consulted = sum(row["requests"] for row in rows if row["cache_status"] is not None)
    count = sum(entry["requests"] for entry in hits.values())
    return {"lookups": consulted, "hits": count, "hit_rate": round(count / consulted, 6) if consulted else 0.0,
            "tokens_saved": sum(entry["prompt_tokens"] + entry["completion_tokens"] + entry["thoughts_tokens"]
                                for entry in hits.values()),
            "cost_saved_usd": round(sum(entry["cost"] for entry in hits.values()), 6)}


def summary(window, prices):
    plan_ = plan(window)
    rows = _model_rows(window, plan_)
    served = [row for row in rows if row["cache_status"] != "HIT"]  # tokens and cost count Gemini's work
    requests = sum(row["requests"] for row in rows)
    errors = sum(row["errors"] for row in rows)
    latency_sum = sum(row["latency_sum"] for row in rows)
    points, exact = percentiles(window, plan_)
    return {
        "window": window.describe(),
        "requests": requests,
        "successes": requests - errors,
        "errors": errors,
        "error_rate": round(errors / requests, 6) if requests else 0.0,
        "prompt_tokens": sum(row["prompt_tokens"] for row in served),
        "completion_tokens": sum(row["completion_tokens"] for row in served),
        "total_tokens": sum(row["total_tokens"] for row in served),
        "latency_ms": {"avg": round(latency_sum / requests, 3) if requests else None, **points, "exact": exact},
        "cost_usd": round(sum(entry["cost"] for entry in _by_model(rows, hits=False, prices=prices).values()), 6),
        "cache": cache_savings(rows, prices),
    }


def buckets(window, unit):
    """Every bucket start in the window, so a series has no holes."""
    step = timedelta(hours=1) if unit == "hour" else timedelta(days=1)
    moment = window.start.replace(minute=0, second=0, microsecond=0)
    if unit == "day":
        moment = moment.replace(hour=0)
    while moment < window.end:
        yield moment.strftime("%Y-%m-%d %H:00:00")
        moment += step


def _group_key(source, group_by):
    if group_by == "hour":
        return source.c.hour
    if group_by == "day":
        return day_of(source.c.hour)
    return source.c[{"client": "client_id", "model": "model_used", "route": "route"}[group_by]]


def usage(window, group_by, prices):
    source = facts(window, plan(window), billed=True)
    key = _group_key(source, group_by).label("key")
    groups = defaultdict(lambda: {"requests": 0, "errors": 0, "prompt_tokens": 0, "completion_tokens": 0,
                                  "total_tokens": 0, "cost_usd": 0.0})
    for row in totals(source, key, source.c.model_used, source.c.cache_status, source.c.batch, source.c.costed):
        group = groups[row["key"]]
        for name in ("requests", "errors", "prompt_tokens", "completion_tokens", "total_tokens"):
            group[name] += row[name] or 0
        if row["cache_status"] != "HIT":  # Gemini billed nothing for the cache's answers
            group["cost_usd"] += _row_cost(row, prices)
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


def _day(hour):
    return hour[:10] + " 00:00:00"


def _exact_series(window, unit):
    """Per bucket, the exact nearest-rank percentiles of latency and time to first byte."""
    series = defaultdict(lambda: {"latency": [], "ttfb": []})
    for hour, latency, ttfb in db.session.execute(
            select(hour_expression(), RequestLog.latency_ms, RequestLog.ttfb_ms).where(*window.conditions())):
        entry = series[hour if unit == "hour" else _day(hour)]
        entry["latency"].append(latency)
        if ttfb is not None:
            entry["ttfb"].append(ttfb)
    return {bucket: {"latency": {f"p{p}": nearest_rank(entry["latency"], p) for p in PERCENTILES},
                     "ttfb": {f"p{p}": nearest_rank(entry["ttfb"], p) for p in PERCENTILES}}
            for bucket, entry in series.items()}


def _histogram_series(window, plan_, unit, scope):
    result = defaultdict(dict)
    for metric in ("latency", "ttfb"):
        merged = defaultdict(lambda: defaultdict(int))
        for hour, counts in histograms_by_hour(window, plan_, metric, scope).items():
            target = merged[hour if unit == "hour" else _day(hour)]
            for bucket, count in counts.items():
                target[bucket] += count
        for bucket_start, counts in merged.items():
            result[bucket_start][metric] = histogram_percentiles(counts)
    return result


def performance(window, unit):
    plan_ = plan(window)
    source = facts(window, plan_)
    key = (source.c.hour if unit == "hour" else day_of(source.c.hour)).label("key")
    sums = {row["key"]: row for row in totals(source, key)}
    scope = scope_of(window)
    exact = plan_.exact or scope is None
    points = _exact_series(window, unit) if exact else _histogram_series(window, plan_, unit, scope)
    empty = {f"p{p}": None for p in PERCENTILES}
    rows = []
    for bucket in buckets(window, unit):
        row = sums.get(bucket) or {"requests": 0, "upstream_count": 0}
        counted = row["upstream_count"] or 0
        rows.append({
            "bucket": bucket.replace(" ", "T") + "Z",
            "requests": row["requests"] or 0,
            "latency_ms": points.get(bucket, {}).get("latency", empty),
            "ttfb_ms": points.get(bucket, {}).get("ttfb", empty),
            "upstream_ms_avg": round(row["upstream_sum"] / counted, 3) if counted else None,
            "overhead_ms_avg": round(row["overhead_sum"] / counted, 3) if counted else None,
        })
    return {"window": window.describe(), "bucket": unit, "exact": exact, "series": rows}


def errors(window, latest=10):
    plan_ = plan(window)
    source = facts(window, plan_)
    by_code = totals(source, source.c.error_code, source.c.status_code, where=[source.c.status_code >= 400])
    attempts = attempt_facts(window, plan_)
    by_upstream = db.session.execute(
        select(attempts.c.attempt_status, db.func.sum(attempts.c.attempts)).where(attempts.c.attempt_status >= 400)
        .group_by(attempts.c.attempt_status)).all()
    examples = db.session.execute(
        select(RequestLog).where(*window.conditions(), _ERROR).order_by(RequestLog.created_at.desc())
        .limit(latest)).scalars().all()
    return {
        "window": window.describe(),
        "by_code": [{"code": row["error_code"] or "(none)", "status": row["status_code"], "count": row["requests"]}
                    for row in sorted(by_code, key=lambda r: (-r["requests"], r["error_code"] or "", r["status_code"]))],
        "by_upstream_status": [{"status": status, "count": count}
                               for status, count in sorted(by_upstream, key=lambda r: (-r[1], r[0]))],
        "latest": [brief(entry) for entry in examples],
    }


def fallbacks(window, pool, chain):
    plan_ = plan(window)
    source = facts(window, plan_, first_model=True)
    pairs = [(row["first_model"], row["model_used"], row["requests"]) for row in
             totals(source, source.c.first_model, source.c.model_used, where=[source.c.first_model.isnot(None)])]
    everything = totals(source)[0]
    attempted = sum(count for _, _, count in pairs)
    moved = [(a, b, n) for a, b, n in pairs if b is not None and a != b]
    attempts = attempt_facts(window, plan_)
    outcomes = db.session.execute(select(attempts.c.outcome, db.func.sum(attempts.c.attempts))
                                  .group_by(attempts.c.outcome)).all()
    now = pool.clock()
    answered = defaultdict(int)
    for _, model, count in moved:
        answered[model] += count
    return {
        "window": window.describe(),
        "requests_with_attempts": attempted,
        "first_model_failed": sum(n for _, _, n in moved),
        "first_model_failure_rate": round(sum(n for _, _, n in moved) / attempted, 6) if attempted else 0.0,
        "fallbacks": [{"from": a, "to": b, "count": n} for a, b, n in sorted(moved, key=lambda r: (-r[2], r[0], r[1]))],
        "answered_by": [{"model": m, "count": n} for m, n in sorted(answered.items(), key=lambda r: (-r[1], r[0]))],
        "retried_requests": everything["retried"] or 0,
        "retries": everything["retries"] or 0,
        "attempts_by_outcome": {outcome: count for outcome, count in outcomes},
        "cooldowns_now": [{"key_id": c.key_id, "model": c.model, "reason": c.reason,
                           "seconds_left": round(c.until - now, 1)} for c in pool.cooldowns()],
        "model_chain": chain,
    }


def _rates(text):
    try:
        rates = json.loads(text)
    except ValueError:
        return None
    return rates if isinstance(rates, dict) else None


def prices_used(window, prices):
    """{model: [{source, per_million, requests, cost_usd, at_read_time}]}: each price the window's costs used,
    read from the request log's rows (rows retention has removed are in the rollups' sums, not here). Rows
    written before costs were stored are at today's price, at_read_time true; the cache's answers cost none."""
    billed = or_(RequestLog.cache_status.is_(None), RequestLog.cache_status != "HIT")
    priced = or_(RequestLog.price_rates.isnot(None), RequestLog.cost_usd.is_(None))
    query = (select(RequestLog.model_used, RequestLog.price_source, RequestLog.price_rates, func.count(),
                    func.sum(RequestLog.cost_usd))
             .where(*window.conditions(), billed, priced, RequestLog.model_used.isnot(None))
             .group_by(RequestLog.model_used, RequestLog.price_source, RequestLog.price_rates))
    used = defaultdict(list)
    for model, source, rates, requests, cost in db.session.execute(query):
        if rates is None:  # written before costs were stored
            used[model].append({"source": prices.source(model), "per_million": prices.rates(model).describe(),
                                "requests": requests, "cost_usd": None, "at_read_time": True})
        else:
            used[model].append({"source": source, "per_million": _rates(rates), "requests": requests,
                                "cost_usd": round(cost or 0.0, 6), "at_read_time": False})
    for entries in used.values():
        entries.sort(key=lambda e: (e["at_read_time"], -e["requests"], e["source"] or ""))
    return used


def costs(window, prices, chain):
    rows = _model_rows(window, plan(window))
    per_model = _by_model(rows, hits=False, prices=prices)
    cheapest = prices.cheapest(chain)
    at_cheapest_of = _by_model(rows, hits=False, prices=prices, priced_as=cheapest) if cheapest else {}
    models, actual_total, cheapest_total = [], 0.0, 0.0
    used = prices_used(window, prices)
    for model, entry in sorted(per_model.items(), key=lambda r: str(r[0])):
        actual = entry["cost"]
        at_cheapest = at_cheapest_of[model]["cost"] if cheapest and model in chain else actual
        actual_total, cheapest_total = actual_total + actual, cheapest_total + at_cheapest
        rates = prices.rates(model)
        models.append({"model": model or "(none)", "requests": entry["requests"],
                       "batch_requests": entry["batch_requests"],
                       **{name: entry[name] for name in _KINDS}, "cost_usd": round(actual, 6),
                       "price_per_million": {"input": rates.input, "output": rates.output, "cached": rates.cached},
                       "price_now": {"source": prices.source(model), **rates.describe()},
                       "prices_used": used.get(model, []),
                       "costed_at_read_time": entry["costed_at_read_time"],
                       "priced": prices.known(model), "cost_at_cheapest_usd": round(at_cheapest, 6)})
    daily = usage(window, "day", prices)["groups"]
    return {
        "window": window.describe(),
        "price_table": {"source": SOURCE, "overridden": sorted(prices.overridden)},
        "total_cost_usd": round(actual_total, 6),
        "by_model": models,
        "by_day": [{"day": row["key"], "cost_usd": row["cost_usd"]} for row in daily],
        "cheapest_fallback_model": cheapest,
        "savings_if_cheapest_usd": round(actual_total - cheapest_total, 6),
    }

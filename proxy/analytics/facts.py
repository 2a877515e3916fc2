"""What the reports read: settled hours from the rollups, the rest of a window from the request log."""
import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, false, func, literal, null, or_, select, true, union_all
from sqlalchemy.orm import aliased

from models import Attempt, HourlyAttempts, HourlyHistogram, HourlyRollup, RequestLog, RolledHour, db

HOUR_FORMAT = "%Y-%m-%d %H:00:00"
ONE_HOUR = timedelta(hours=1)
PERCENTILES = (50, 95, 99)
# Histogram buckets grow by 2^(1/16), so a percentile read from them is within 2.2% of the exact one.
_GROWTH = 2 ** (1 / 16)
_LOG_GROWTH = math.log(_GROWTH)

DIMENSIONS = ("hour", "route", "model_used", "status_code", "error_code", "client_id", "cache_status", "first_model")
MEASURES = ("requests", "prompt_tokens", "completion_tokens", "total_tokens", "latency_sum", "upstream_sum",
            "upstream_count", "overhead_sum", "ttfb_sum", "ttfb_count", "retried", "retries")
# What costs read beside those: the billed token kinds, the stored costs' sum, and two flags: whether the
# rows are a batch's (half price) and whether they were costed when written (costed false: rows written
# before costs were stored, costed at read time from their tokens). The rollups keep them as well.
BILLED = ("cached_tokens", "thoughts_tokens", "tool_use_prompt_tokens", "cost_usd")
BATCH = "batch"
COSTED = "costed"


def bucket_of(value):
    return math.floor(math.log(max(value, 0.001)) / _LOG_GROWTH)


def bucket_value(bucket):
    """A bucket's representative value: its geometric middle."""
    return _GROWTH ** (bucket + 0.5)


def floor_hour(moment):
    return moment.replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment):
    floor = floor_hour(moment)
    return floor if floor == moment else floor + ONE_HOUR


def hour_text(moment):
    return moment.strftime(HOUR_FORMAT)


def hour_expression(column=RequestLog.created_at):
    """The start of a row's hour as text, the form the rollups store, in the database's own dialect."""
    if db.engine.dialect.name == "postgresql":
        return func.to_char(func.date_trunc("hour", column), "YYYY-MM-DD HH24:00:00")
    return func.strftime(HOUR_FORMAT, column)


def day_of(hour_column):
    return func.substr(hour_column, 1, 10).concat(" 00:00:00")


@dataclass(frozen=True)
class Plan:
    """Which parts of a window come from rollups (hour text ranges) and which from raw rows (datetimes)."""

    rolled: tuple
    raw: tuple

    @property
    def exact(self):
        return not self.rolled


def plan(window):
    first, last = ceil_hour(window.start), floor_hour(window.end)
    if first >= last:
        return Plan((), ((window.start, window.end),))
    hours = db.session.execute(select(RolledHour.hour).where(
        RolledHour.hour >= hour_text(first), RolledHour.hour < hour_text(last)).order_by(RolledHour.hour)).scalars()
    runs = []
    for text in hours:
        moment = datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
        if runs and runs[-1][1] == moment:
            runs[-1][1] = moment + ONE_HOUR
        else:
            runs.append([moment, moment + ONE_HOUR])
    raw, cursor = [], window.start
    for start, end in runs:
        if cursor < start:
            raw.append((cursor, start))
        cursor = end
    if cursor < window.end:
        raw.append((cursor, window.end))
    return Plan(tuple((hour_text(s), hour_text(e)) for s, e in runs), tuple(raw))


def filters(window, entity):
    """The window's dimension filters against any table with the request log's column names."""
    pairs = (("model_used", window.model), ("route", window.route), ("status_code", window.status),
             ("client_id", window.client))
    return [getattr(entity, name) == value for name, value in pairs if value is not None]


def in_ranges(column, ranges):
    return or_(*[and_(column >= start, column < end) for start, end in ranges])


def raw_facts(conditions, first_model=False, billed=False):
    """One fact per request-log row, in the rollups' columns (with billed=True, the billed kinds too)."""
    upstream, ttfb, attempts = RequestLog.upstream_latency_ms, RequestLog.ttfb_ms, RequestLog.attempt_count
    first = aliased(Attempt)
    overhead = case((upstream.isnot(None) & (RequestLog.latency_ms > upstream), RequestLog.latency_ms - upstream),
                    else_=0.0)
    query = select(
        hour_expression().label("hour"), RequestLog.route, RequestLog.model_used, RequestLog.status_code,
        RequestLog.error_code, RequestLog.client_id, RequestLog.cache_status,
        (first.model if first_model else null()).label("first_model"),
        literal(1).label("requests"),
        func.coalesce(RequestLog.prompt_tokens, 0).label("prompt_tokens"),
        func.coalesce(RequestLog.completion_tokens, 0).label("completion_tokens"),
        func.coalesce(RequestLog.total_tokens, 0).label("total_tokens"),
        RequestLog.latency_ms.label("latency_sum"),
        func.coalesce(upstream, 0.0).label("upstream_sum"),
        case((upstream.isnot(None), 1), else_=0).label("upstream_count"),
        overhead.label("overhead_sum"),
        func.coalesce(ttfb, 0.0).label("ttfb_sum"),
        case((ttfb.isnot(None), 1), else_=0).label("ttfb_count"),
        case((attempts > 1, 1), else_=0).label("retried"),
        case((attempts > 1, attempts - 1), else_=0).label("retries"),
        *(_billed_columns() if billed else ()),
    ).select_from(RequestLog).where(*conditions)
    if first_model:
        query = query.outerjoin(first, and_(first.request_log_id == RequestLog.id, first.number == 1))
    return query


def _billed_columns():
    kinds = [func.coalesce(getattr(RequestLog, name), 0).label(name) for name in BILLED]
    costed = case((RequestLog.cost_usd.isnot(None), true()), else_=false())
    return (*kinds, RequestLog.batch.label(BATCH), costed.label(COSTED))


def _rolled_billed_columns():
    return (*[getattr(HourlyRollup, name).label(name) for name in BILLED], HourlyRollup.batch.label(BATCH),
            HourlyRollup.costed.label(COSTED))


def facts(window, plan_, first_model=False, billed=False):
    """Facts covering the window: rollup rows for rolled hours, request-log rows for the rest; with
    billed=True also the billed token kinds and the batch flag, for costs."""
    parts = []
    if plan_.raw:
        parts.append(raw_facts([in_ranges(RequestLog.created_at, plan_.raw), *filters(window, RequestLog)],
                               first_model, billed))
    if plan_.rolled:
        parts.append(select(*[getattr(HourlyRollup, name).label(name) for name in DIMENSIONS + MEASURES],
                            *(_rolled_billed_columns() if billed else ())).where(
            in_ranges(HourlyRollup.hour, plan_.rolled), *filters(window, HourlyRollup)))
    return (parts[0] if len(parts) == 1 else union_all(*parts)).subquery("facts")


def totals(source, *keys, where=()):
    """Sums of every measure (and errors) per group of `keys`, as dicts; the billed kinds too when the
    source has them (facts(billed=True))."""
    sums = [func.sum(source.c[name]).label(name) for name in MEASURES + BILLED if name in source.c]
    errors = func.sum(case((source.c.status_code >= 400, source.c.requests), else_=0)).label("errors")
    query = select(*keys, *sums, errors).where(*where)
    if keys:
        query = query.group_by(*keys)
    return [dict(row._mapping) for row in db.session.execute(query)]


def attempt_facts(window, plan_):
    """Upstream attempts under the window: rollup rows for rolled hours, attempt rows for the rest."""
    parts = []
    if plan_.raw:
        parts.append(select(hour_expression().label("hour"), RequestLog.route, RequestLog.model_used,
                            RequestLog.status_code, RequestLog.client_id, Attempt.outcome,
                            Attempt.status_code.label("attempt_status"), literal(1).label("attempts"))
                     .select_from(Attempt).join(RequestLog, Attempt.request_log_id == RequestLog.id)
                     .where(in_ranges(RequestLog.created_at, plan_.raw), *filters(window, RequestLog)))
    if plan_.rolled:
        parts.append(select(HourlyAttempts.hour, HourlyAttempts.route, HourlyAttempts.model_used,
                            HourlyAttempts.status_code, HourlyAttempts.client_id, HourlyAttempts.outcome,
                            HourlyAttempts.attempt_status, HourlyAttempts.attempts)
                     .where(in_ranges(HourlyAttempts.hour, plan_.rolled), *filters(window, HourlyAttempts)))
    return (parts[0] if len(parts) == 1 else union_all(*parts)).subquery("attempt_facts")


# Percentiles -------------------------------------------------------------------------------------------------


def scope_of(window):
    """The histogram scope for the window's filters, or None when more than one filter is set."""
    set_ = [(name, value) for name, value in (("model", window.model), ("route", window.route),
                                              ("status", window.status), ("client", window.client))
            if value is not None]
    if len(set_) > 1:
        return None
    return f"{set_[0][0]}:{set_[0][1]}" if set_ else ""


def scopes_of(route, model, status, client):
    scopes = ["", f"route:{route}", f"status:{status}"]
    if model is not None:
        scopes.append(f"model:{model}")
    if client is not None:
        scopes.append(f"client:{client}")
    return scopes


def _metric_column(metric):
    return RequestLog.latency_ms if metric == "latency" else RequestLog.ttfb_ms


def exact_percentiles(window, column, points=PERCENTILES):
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


def nearest_rank(values, point):
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(1, math.ceil(point / 100 * len(ordered))) - 1], 3)


def histogram_percentiles(counts, points=PERCENTILES):
    total = sum(counts.values())
    result = {f"p{point}": None for point in points}
    if not total:
        return result
    ranks = sorted((max(1, math.ceil(point / 100 * total)), point) for point in points)
    seen, position = 0, 0
    for bucket in sorted(counts):
        seen += counts[bucket]
        while position < len(ranks) and ranks[position][0] <= seen:
            result[f"p{ranks[position][1]}"] = round(bucket_value(bucket), 3)
            position += 1
    return result


def histograms_by_hour(window, plan_, metric, scope):
    """{hour text: Counter(bucket: count)} over the window, rollups and raw edges merged."""
    by_hour = defaultdict(Counter)
    if plan_.rolled:
        rows = db.session.execute(select(HourlyHistogram.hour, HourlyHistogram.bucket, HourlyHistogram.count).where(
            HourlyHistogram.scope == scope, HourlyHistogram.metric == metric,
            in_ranges(HourlyHistogram.hour, plan_.rolled)))
        for hour, bucket, count in rows:
            by_hour[hour][bucket] += count
    for hour, bucket in _raw_buckets(window, plan_, metric):
        by_hour[hour][bucket] += 1
    return by_hour


def _raw_buckets(window, plan_, metric):
    """(hour, bucket) of every raw row outside the rolled-up hours, so edges merge with histograms."""
    if not plan_.raw:
        return
    column = _metric_column(metric)
    for hour, value in db.session.execute(select(hour_expression(), column).where(
            in_ranges(RequestLog.created_at, plan_.raw), *filters(window, RequestLog), column.isnot(None))):
        yield hour, bucket_of(value)


def percentiles(window, plan_, metric="latency"):
    """Nearest-rank percentiles, exact when the window is read from raw rows, otherwise within 2.2%."""
    scope = scope_of(window)
    if plan_.exact or scope is None:
        return exact_percentiles(window, _metric_column(metric)), True
    counts = Counter()
    if plan_.rolled:
        rows = db.session.execute(select(HourlyHistogram.bucket, func.sum(HourlyHistogram.count)).where(
            HourlyHistogram.scope == scope, HourlyHistogram.metric == metric,
            in_ranges(HourlyHistogram.hour, plan_.rolled)).group_by(HourlyHistogram.bucket))
        counts.update(dict(rows.all()))
    counts.update(bucket for _, bucket in _raw_buckets(window, plan_, metric))
    return histogram_percentiles(counts), False

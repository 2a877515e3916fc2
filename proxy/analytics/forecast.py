"""GET /analytics/forecast's service: tokens and cost to the end of the UTC day and month, per client and in
total, and when each client's budget and daily token quota run out (the model is in forecast_fit)."""
import calendar
from collections import defaultdict
from datetime import datetime, timedelta, timezone

from sqlalchemy import or_, select

from models import ApiClient, db

from . import forecast_fit
from .facts import COSTED, ONE_HOUR, facts, plan, totals
from .pricing import usage_of
from .window import Window

ONE_DAY = timedelta(days=1)
MAX_DAYS = 365
DEFAULT_DAYS = 28


def cost_of(row, prices):
    """USD of one row of sums, as the reports count it: the costs stored with its records, or today's prices
    for records written before costs were stored."""
    if row.get(COSTED):
        return row.get("cost_usd") or 0.0
    return prices.cost(row["model_used"], usage_of(row), bool(row.get("batch")), long_context=False)


def _stamp(moment):
    return moment.replace(tzinfo=timezone.utc).isoformat()


def _month_end(moment):
    last = calendar.monthrange(moment.year, moment.month)[1]
    return moment.replace(day=last, hour=0, minute=0, second=0, microsecond=0) + ONE_DAY


def hourly_usage(start, end, prices):
    """{client_id: {hour: [tokens, cost]}} of Gemini's work (cache hits cost nothing), from the rollups' settled
    hours and the raw rows around them; the key None holds everything, every client's and none's."""
    window = Window(start, end)
    source = facts(window, plan(window), billed=True)
    served = or_(source.c.cache_status.is_(None), source.c.cache_status != "HIT")
    series = defaultdict(lambda: defaultdict(lambda: [0, 0.0]))
    hours = {}  # each hour's text parsed once: it recurs for every client, model and batch flag
    for row in totals(source, source.c.hour, source.c.client_id, source.c.model_used, source.c.batch,
                      source.c.costed, where=[served]):
        hour = hours.get(row["hour"]) or hours.setdefault(row["hour"], datetime.fromisoformat(row["hour"][:19]))
        tokens, cost = row["total_tokens"] or 0, cost_of(row, prices)
        for key in ("all", row["client_id"]):
            cell = series[key][hour]
            cell[0] += tokens
            cell[1] += cost
    return series


class Series:
    """One client's (or everyone's) hourly usage, read as complete days before today and today so far."""

    def __init__(self, hours, today, history_start, now):
        self.hours, self.today, self.now = hours, today, now
        # The history starts at the first day with usage: a new client's empty days are no trend.
        self.first = min((h.replace(hour=0) for h in hours if history_start <= h < today), default=today)
        self.days = (today - self.first).days
        profile = [0.0] * 24
        for hour, (tokens, _) in hours.items():
            if self.first <= hour < today:
                profile[hour.hour] += tokens
        total = sum(profile)
        self.profile = [p / total for p in profile] if total else [1 / 24] * 24

    def daily(self, measure):
        values = [0.0] * self.days
        for hour, cell in self.hours.items():
            if self.first <= hour < self.today:
                values[(hour - self.first).days] += cell[measure]
        return values

    def since(self, start, measure):
        return sum(cell[measure] for hour, cell in self.hours.items() if start <= hour < self.now)

    def left_today(self):
        """Share of today's expected usage still to come, by the trailing hourly profile."""
        hour = self.now.hour
        elapsed = (self.now - self.now.replace(minute=0, second=0, microsecond=0)) / ONE_HOUR
        return self.profile[hour] * (1 - elapsed) + sum(self.profile[hour + 1:])


def _figure(series, fits, start, end, parts):
    figure = {"ends_at": _stamp(end)}
    for name, measure, digits in (("tokens", 0, 0), ("cost_usd", 1, 6)):
        so_far = series.since(start, measure)
        expected, low, high = fits[measure].project(parts)
        shape = (lambda v: int(round(v))) if digits == 0 else (lambda v: round(v, digits))  # noqa: E731
        figure[name] = {"so_far": shape(so_far), "expected": shape(so_far + expected),
                        "low": shape(so_far + low), "high": shape(so_far + high)}
    return figure


def project(series, now):
    """The day's and month's figures of one series, and its fits (tokens, cost)."""
    weekday0 = series.first.weekday()
    fits = [forecast_fit.fit(series.daily(measure), weekday0) for measure in (0, 1)]
    today, t = series.today, series.days
    rest = [(t, series.left_today())]
    future = [(t + d, 1.0) for d in range(1, (_month_end(now) - today).days)]
    day = _figure(series, fits, today, today + ONE_DAY, rest)
    month = _figure(series, fits, today.replace(day=1), _month_end(now), rest + future)
    return day, month, fits


def runs_out(series, fit, measure, limit, start, end):
    """When the series' usage since `start` is expected to reach `limit` before `end`: what it used hour by
    hour until now, then the fit's expected day spread over the hourly profile; None if not by `end`."""
    used = 0.0
    for hour in sorted(h for h in series.hours if start <= h < series.now):
        amount = series.hours[hour][measure]
        if used + amount >= limit:
            stop = min(hour + ONE_HOUR, series.now)
            return hour + (stop - hour) * ((limit - used) / amount if amount else 0.0)
        used += amount
    moment = series.now
    while moment < end:
        hour = moment.replace(minute=0, second=0, microsecond=0)
        stop = min(hour + ONE_HOUR, end)
        t = (hour.replace(hour=0) - series.first).days
        amount = fit.expected(t) * series.profile[hour.hour] * ((stop - moment) / ONE_HOUR)
        if amount > 0 and used + amount >= limit:
            return moment + (stop - moment) * ((limit - used) / amount)
        used += amount
        moment = stop
    return None


def _clients(ids):
    """Active clients and any with usage in the history, by id."""
    query = select(ApiClient).where(or_(ApiClient.revoked_at.is_(None), ApiClient.id.in_(ids)))
    return db.session.execute(query.order_by(ApiClient.id)).scalars().all()


def _budget(client, series, fit, now):
    usd = getattr(client, "budget_usd", None)  # columns another change adds; absent before it
    if usd is None:
        return None
    period = getattr(client, "budget_period", None) or "month"
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    start, end = (today, today + ONE_DAY) if period == "day" else (today.replace(day=1), _month_end(now))
    moment = runs_out(series, fit, 1, float(usd), start, end)
    return {"usd": float(usd), "period": period, "spent_usd": round(series.since(start, 1), 6),
            "runs_out_at": _stamp(moment) if moment else None}


def _quota(client, series, fit, default_quota, today):
    quota = client.daily_token_quota if client.daily_token_quota is not None else default_quota
    if not quota:
        return None  # 0: unlimited
    moment = runs_out(series, fit, 0, quota, today, today + ONE_DAY)
    return {"daily_tokens": quota, "used": int(series.since(today, 0)),
            "runs_out_at": _stamp(moment) if moment else None}


def forecast(prices, days=DEFAULT_DAYS, default_quota=0, now=None, clients=None):
    """The forecast from the trailing `days` complete UTC days; `clients` (ApiClient-like) defaults to the
    active clients and those with usage."""
    now = now or datetime.now(timezone.utc).replace(tzinfo=None)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    history_start = today - timedelta(days=days)
    usage = hourly_usage(min(history_start, today.replace(day=1)), now, prices)
    total = Series(usage.get("all", {}), today, history_start, now)
    day, month, fits = project(total, now)
    if clients is None:
        clients = _clients([key for key in usage if key not in ("all", None)])
    rows = []
    for client in clients:
        series = Series(usage.get(client.id, {}), today, history_start, now)
        client_day, client_month, client_fits = project(series, now)
        rows.append({"client_id": client.id, "name": client.name, "day": client_day, "month": client_month,
                     "history_days": series.days, "seasonality": "weekly" if client_fits[0].weekly else "none",
                     "budget": _budget(client, series, client_fits[1], now),
                     "quota": _quota(client, series, client_fits[0], default_quota, today)})
    return {"generated_at": _stamp(now), "history_days": total.days, "days": days,
            "seasonality": "weekly" if fits[0].weekly else "none",
            "weekly_index": [round(s, 4) for s in fits[0].index] if fits[0].weekly else None,
            "total": {"day": day, "month": month}, "clients": rows}

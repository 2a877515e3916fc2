"""Keeps the hourly rollups: aggregates settled hours, and forgets an hour when a late record lands in it."""
from collections import Counter
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, event, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import Attempt, HourlyAttempts, HourlyHistogram, HourlyRollup, RequestLog, RolledHour, db

from ..periodic import one_per_deployment, run_apart, run_every
from ..storage.sqlite_turns import serving_on_gevent
from .facts import (BATCH, BILLED, COSTED, DIMENSIONS, MEASURES, ONE_HOUR, bucket_of, floor_hour, hour_expression,
                    hour_text, raw_facts, scopes_of)

# No request runs this long, so an hour that ended this long ago has all of its records. A record that
# still arrives later (a spool replay, a backfill) makes the hour be rolled up again.
SETTLE = timedelta(minutes=30)
_AGGREGATES = (HourlyRollup, HourlyAttempts, HourlyHistogram)


def _utcnow():
    return datetime.now(timezone.utc).replace(tzinfo=None)


def settled_before(now):
    return floor_hour(now - SETTLE)


def _drop(tables, start_text, end_text):
    for table in tables:
        clauses = ([table.hour >= start_text] if start_text else []) + ([table.hour < end_text] if end_text else [])
        db.session.execute(delete(table).where(*clauses))


def forget(start_text=None, end_text=None):
    """Drop the rollups of the hours in [start, end) (either bound may be open), so that reports read
    those hours from raw rows until they are rebuilt."""
    _drop((*_AGGREGATES, RolledHour), start_text, end_text)


def forget_late(moments, session=None):
    """Drop the rollup of every settled hour among `moments`, the times of records written late."""
    limit = settled_before(_utcnow())
    hours = {hour_text(floor_hour(moment)) for moment in moments if moment is not None and moment < limit}
    if hours:
        (session or db.session).execute(delete(RolledHour).where(RolledHour.hour.in_(sorted(hours))))


def forget_late_records(records):
    """An observer of each transaction that writes request records (registered in the app factory): the
    hours of those written late are rolled up again."""
    forget_late([record.created_at for record in records])


def _forget_late_records(session, _context, _instances):
    forget_late([instance.created_at for instance in session.new if isinstance(instance, RequestLog)], session)


def watch_late_records():
    """Every session forgets an hour's rollup when it writes a record into that hour after it settled."""
    if not event.contains(Session, "before_flush", _forget_late_records):
        event.listen(Session, "before_flush", _forget_late_records)


def missing_hours(now):
    """Settled hours, from the first record on, that have no rollup yet."""
    earliest = db.session.execute(select(func.min(RequestLog.created_at))).scalar()
    limit = settled_before(now)
    if earliest is None or floor_hour(earliest) >= limit:
        return []
    moment = floor_hour(earliest)
    done = set(db.session.execute(select(RolledHour.hour).where(RolledHour.hour >= hour_text(moment))).scalars())
    missing = []
    while moment < limit:
        if hour_text(moment) not in done:
            missing.append(moment)
        moment += ONE_HOUR
    return missing


def _runs(hours, longest):
    """Contiguous runs of at most `longest` hours."""
    run = []
    for hour in hours:
        if run and (hour != run[-1] + ONE_HOUR or len(run) >= longest):
            yield run[0], run[-1] + ONE_HOUR
            run = []
        run.append(hour)
    if run:
        yield run[0], run[-1] + ONE_HOUR


def build(start, end):
    """Roll up the hours in [start, end); returns how many hours, 0 if another process built them first
    or records landed in them meanwhile (the next run builds them then).

    The aggregates are computed in a read transaction and written in a short one. Computed inside the
    write transaction, a busy hour (100,000 requests: 2.5 s) kept SQLite's only write lock from every
    worker's records for as long. The write checks that the hours hold as many records as were read."""
    range_ = [RequestLog.created_at >= start, RequestLog.created_at < end]
    first, last = hour_text(start), hour_text(end)
    hours, moment = [], start
    while moment < end:
        hours.append({"hour": hour_text(moment), "built_at": _utcnow()})
        moment += ONE_HOUR
    if db.session.execute(select(RolledHour.hour).where(RolledHour.hour >= first, RolledHour.hour < last)).first():
        db.session.rollback()
        return 0  # built by another process meanwhile
    with _one_snapshot():
        counted = _count(range_)
        aggregates = _aggregate(range_)
    try:
        db.session.execute(insert(RolledHour), hours)  # a second builder fails here
        if _count(range_) != counted:
            db.session.rollback()
            return 0
        _drop(_AGGREGATES, first, last)
        for table, rows in aggregates:
            if rows:
                db.session.execute(insert(table), rows)
        db.session.commit()
        return len(hours)
    except IntegrityError:
        db.session.rollback()
        return 0


def _count(range_):
    return db.session.execute(select(func.count()).select_from(RequestLog).where(*range_)).scalar_one()


@contextmanager
def _one_snapshot():
    """The reads inside see the database as of one moment, and take no write lock."""
    db.session.commit()  # an isolation level is chosen as a transaction begins
    if db.engine.dialect.name == "sqlite":
        # Python's sqlite3 begins no transaction for a SELECT: each would see the database anew.
        db.session.connection().exec_driver_sql("BEGIN")
    else:
        db.session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    try:
        yield
    finally:
        db.session.rollback()


def _aggregate(range_):
    """[(rollup table, its rows)] for the request-log rows in `range_`."""
    facts = raw_facts(range_, first_model=True, billed=True).subquery()
    # Costs keep apart what they price apart: a batch's rows, and rows stored without a cost.
    dims = [facts.c[name] for name in (*DIMENSIONS, BATCH, COSTED)]
    rollups = [dict(row) for row in db.session.execute(
        select(*dims, *[func.sum(facts.c[name]).label(name) for name in MEASURES + BILLED])
        .group_by(*dims)).mappings()]
    attempt_dims = [hour_expression(), RequestLog.route, RequestLog.model_used, RequestLog.status_code,
                    RequestLog.client_id, Attempt.outcome, Attempt.status_code]
    attempt_columns = ("hour", "route", "model_used", "status_code", "client_id", "outcome", "attempt_status",
                       "attempts")
    attempts = [dict(zip(attempt_columns, row)) for row in db.session.execute(
        select(*attempt_dims, func.count()).select_from(Attempt)
        .join(RequestLog, Attempt.request_log_id == RequestLog.id).where(*range_).group_by(*attempt_dims))]
    histogram = Counter()
    for hour, route, model, status, client, latency, ttfb in db.session.execute(select(
            hour_expression(), RequestLog.route, RequestLog.model_used, RequestLog.status_code,
            RequestLog.client_id, RequestLog.latency_ms, RequestLog.ttfb_ms).where(*range_)):
        for scope in scopes_of(route, model, status, client):
            histogram[scope, "latency", hour, bucket_of(latency)] += 1
            if ttfb is not None:
                histogram[scope, "ttfb", hour, bucket_of(ttfb)] += 1
    histograms = [{"scope": s, "metric": m, "hour": h, "bucket": b, "count": n}
                  for (s, m, h, b), n in histogram.items()]
    return [(HourlyRollup, rollups), (HourlyAttempts, attempts), (HourlyHistogram, histograms)]


def roll_up(now=None, longest_run=6, pause=None):
    """Roll up every settled hour that has no rollup yet; returns how many hours were built.
    `pause`, called between runs, lets a worker serve requests meanwhile, and stops early by returning True."""
    built = 0
    for start, end in list(_runs(missing_hours(now or _utcnow()), longest_run)):
        built += build(start, end)
        if pause and pause():
            break
    return built


def roll_up_once(pause=None):
    """One background run: what it did, for the log, or None."""
    built = roll_up(pause=pause)
    return f"rolled up {built} hour(s) of the request log" if built else None


def start_periodic_rollups(app, interval, stop=None):
    """Roll up settled hours every `interval` seconds in the background until `stop` is set; one worker
    of the deployment at a time (and hours another claimed are skipped all the same)."""
    def job(stop):
        if serving_on_gevent():
            return run_apart(app, "rollup") if missing_hours(_utcnow()) else None
        with one_per_deployment(app, "rollup") as mine:
            return roll_up_once(pause=lambda: stop.wait(0.01)) if mine else None

    return run_every(app, "rollups", interval, job, stop)

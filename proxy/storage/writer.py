"""Writes a request's record to the database, or to the spool when the database will not take it."""
import logging

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from models import Attempt, Exchange, ExchangeBody, Metric, RequestLog, db

from .database import create_tables
from .spool import columns_of, restore

log = logging.getLogger(__name__)


def to_record(entry):
    """A request-log row and everything hanging from it, as JSON-able data."""
    record = columns_of(entry)
    record["attempts"] = [columns_of(attempt) for attempt in entry.attempts]
    record["metric"] = columns_of(entry.metric) if entry.metric is not None else None
    exchange = entry.exchange
    record["exchange"] = columns_of(exchange) if exchange is not None else None
    if exchange is not None and exchange.body is not None:
        record["exchange"]["body"] = columns_of(exchange.body)
    return record


def from_record(record):
    record = dict(record)
    attempts, metric, exchange = record.pop("attempts"), record.pop("metric"), record.pop("exchange")
    entry = restore(RequestLog, record)
    entry.attempts = [restore(Attempt, values) for values in attempts]
    if metric is not None:
        entry.metric = restore(Metric, metric)
    if exchange is not None:
        body = exchange.pop("body", None)
        entry.exchange = restore(Exchange, exchange)
        if body is not None:
            entry.exchange.body = restore(ExchangeBody, body)
    return entry


def persist(entry):
    """Write the record; when the database refuses it, spool it. Never raises."""
    try:
        db.session.add(entry)
        db.session.commit()
        return
    except SQLAlchemyError as exc:
        db.session.rollback()
        reason = str(exc.orig if getattr(exc, "orig", None) is not None else exc).splitlines()[0]
    try:
        current_app.extensions["spool"].append(to_record(entry))
        log.warning("the database refused the record of request %s (%s); it is spooled", entry.request_id, reason)
    except Exception:
        log.exception("FAILED TO RECORD request %s: the database refused it (%s) and so did the spool",
                      entry.request_id, reason)


def save(record):
    """Write one spooled record unless the database already has its request id."""
    exists = db.session.execute(select(RequestLog.id).where(RequestLog.request_id == record["request_id"])).first()
    if exists:
        return False
    db.session.add(from_record(record))
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return False
    return True


def replay_spool(_stop=None):
    """Move spooled records into the database, if it takes them now; returns what happened, for the log."""
    spool = current_app.extensions["spool"]
    if not spool.files():
        return None
    try:
        create_tables()  # a database file that was deleted comes back empty
        written, duplicates = spool.replay(save)
    except SQLAlchemyError as exc:
        db.session.rollback()
        log.info("the spool waits: the database still refuses records (%s)", str(exc).splitlines()[0])
        return None
    if written or duplicates:
        return f"replayed {written} spooled record(s) into the database ({duplicates} were already there)"
    return None

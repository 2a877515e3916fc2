"""Writes a batch of records in one transaction: a few multi-row INSERTs, not an ORM flush per record.

A record is a storage.records.RequestRecord: a request-log row's columns plus its attempts, metric and
exchange (with its body), as the recorders build them; the database assigns the ids that link them."""
import dataclasses
import uuid
from operator import attrgetter

from sqlalchemy import String, delete, insert, select, text
from sqlalchemy.exc import DisconnectionError, IntegrityError, InterfaceError, OperationalError, SQLAlchemyError

from models import Attempt, Exchange, ExchangeBody, Metric, RequestLog, db

from .inflight import WORKER_DIED

_CHUNK = 500  # request ids per IN (...) look-up, well under SQLite's limit on bound variables
_NOT_SEEN = object()
# The database cannot take records now (locked, full, read-only, gone, unreachable): they wait.
UNAVAILABLE = (OperationalError, InterfaceError, DisconnectionError)
# The database will never take this record as it is: it is put aside, not retried forever.
_INVALID = (SQLAlchemyError, KeyError, TypeError, ValueError)


def _fields(kind):
    return {field.name for field in dataclasses.fields(kind)} if dataclasses.is_dataclass(kind) else set()


class _Table:
    """A table's insertable columns, with the defaults its model would have filled in."""

    def __init__(self, model):
        self.table = model.__table__
        self.defaults = {}
        # A model name or path from a client's URL may be longer than its column: PostgreSQL would
        # refuse the whole record, so it is cut to fit.
        self.lengths = {column.key: column.type.length for column in self.table.columns
                        if isinstance(column.type, String) and column.type.length}
        for column in self.table.columns:
            if column.primary_key:
                continue
            default = column.default
            self.defaults[column.key] = (default.arg if default.is_scalar else (lambda d=default: d.arg(None))) \
                if default is not None else None
        self._filled = [(key, default) for key, default in self.defaults.items() if default is not None]
        self._cut = [(key, length) for key, length in self.lengths.items() if key in self.defaults]
        self._readers = {}  # record type: its reader

    def row(self, values, **links):
        # Every column's value read at C speed (a record's type knows its fields: those it lacks are None),
        # then only the columns that need it visited: this runs for every row of every batch.
        names, getter, lacking = self._reader(type(values))
        row = dict(zip(names, getter(values)))
        row.update(lacking)
        for key, value in links.items():  # the ids that link a row to its parent's
            if key in row:
                row[key] = value
        for key, length in self._cut:  # before the defaults, which are never cut
            value = row[key]
            if isinstance(value, str) and len(value) > length:
                row[key] = value[:length]
        for key, default in self._filled:
            if row[key] is None:
                row[key] = default() if callable(default) else default
        return row

    def _reader(self, kind):
        """(the columns a `kind` has, a function giving their values as a tuple, {column it lacks: None})."""
        reader = self._readers.get(kind)
        if reader is None:
            names = tuple(key for key in self.defaults if hasattr(kind, key) or key in _fields(kind))
            getter = attrgetter(*names) if len(names) > 1 else (
                (lambda values, get=attrgetter(*names): (get(values),)) if names else (lambda values: ()))
            reader = self._readers[kind] = (names, getter, dict.fromkeys(key for key in self.defaults
                                                                           if key not in names))
        return reader

    def insert(self, rows, ids=False):
        """Insert `rows`; with ids=True return their new ids, in order."""
        if not rows:
            return []
        if not ids:
            db.session.execute(insert(self.table), rows)
            return []
        dialect = db.session.get_bind().dialect
        if dialect.name == "sqlite":
            # SQLite gives each new row one more than the table's largest rowid, and this transaction
            # holds the only write lock from its first INSERT on: one executemany's rows get consecutive
            # ids ending at last_insert_rowid(). RETURNING with ordered rows would cost SQLAlchemy a
            # statement per row.
            db.session.execute(insert(self.table), rows)
            last = db.session.execute(text("SELECT last_insert_rowid()")).scalar_one()
            return list(range(last - len(rows) + 1, last + 1))
        if dialect.insert_executemany_returning_sort_by_parameter_order:
            statement = insert(self.table).returning(self.table.c.id, sort_by_parameter_order=True)
            return list(db.session.execute(statement, rows).scalars())
        return [db.session.execute(insert(self.table), row).inserted_primary_key[0] for row in rows]


_METRICS, _LOGS, _ATTEMPTS, _EXCHANGES, _BODIES = map(_Table, (Metric, RequestLog, Attempt, Exchange, ExchangeBody))


def _known(request_ids):
    """{request id: (created_at, error_code)} of those the database holds already."""
    known = {}
    for start in range(0, len(request_ids), _CHUNK):
        chunk = request_ids[start:start + _CHUNK]
        known.update((request_id, (created_at, error_code)) for request_id, created_at, error_code in
                     db.session.execute(select(RequestLog.request_id, RequestLog.created_at, RequestLog.error_code)
                                        .where(RequestLog.request_id.in_(chunk))).all())
    return known


def insert_records(records, *, reject, tried=True, written=()):
    """Write the RequestRecords the database does not hold yet; returns (written, already there). Raises
    one of UNAVAILABLE when the database cannot take records now. A record it refuses as invalid is handed
    to `reject(record, reason)` so that it does not hold back the others. Each of `written` is called with
    the records a transaction writes, inside it (the rollups forget the hours late records land in)."""
    try:
        return _insert(records, tried, written)
    except UNAVAILABLE:
        raise
    except _INVALID:
        db.session.rollback()
    written = duplicates = 0
    for record in records:  # one by one, to find the record the database refuses
        try:
            done, already = _insert([record], True, written)
        except UNAVAILABLE:
            raise
        except _INVALID as exc:
            db.session.rollback()
            reject(record, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            continue
        written, duplicates = written + done, duplicates + already
    return written, duplicates


def _insert(records, tried, observers):
    """All or none, in one transaction. A record is already there when its request id is, with the same
    start time: a write that was interrupted after its commit is retried. A client may send the same
    X-Request-ID with several requests; each is a record of its own, kept under the id with a suffix.
    The request's own record replaces the WORKER_DIED one survivors wrote for it, should it turn up
    after it (its dead worker's spool file replayed by another survivor meanwhile).
    Records never `tried` skip the look-up unless the database turns one of their ids down."""
    if not tried:
        try:
            _write(records, observers)
            db.session.commit()
            return len(records), 0
        except IntegrityError:
            db.session.rollback()
    seen = _known(list({record.request_id for record in records}))
    fresh, replaced = [], []
    for record in records:
        started, code = seen.get(record.request_id, (_NOT_SEEN, None))
        if started == record.created_at:
            if code != WORKER_DIED or record.error_code == WORKER_DIED:
                continue
            replaced.append(record.request_id)
        elif started is not _NOT_SEEN:
            record.request_id = f"{record.request_id[:40]}~{uuid.uuid4().hex[:16]}"
        seen[record.request_id] = (record.created_at, record.error_code)
        fresh.append(record)
    try:
        if replaced:  # an aborted record has no attempts, exchange or metric to take with it
            db.session.execute(delete(RequestLog).where(RequestLog.request_id.in_(replaced),
                                                        RequestLog.error_code == WORKER_DIED))
        _write(fresh, observers)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return len(fresh), len(records) - len(fresh)


def _write(records, observers):
    if not records:
        return
    measured = [record for record in records if record.metric is not None]
    metric_ids = dict(zip(map(id, measured), _METRICS.insert([_METRICS.row(r.metric) for r in measured], ids=True)))
    log_ids = _LOGS.insert([_LOGS.row(r, metric_id=metric_ids.get(id(r))) for r in records], ids=True)
    _ATTEMPTS.insert([_ATTEMPTS.row(attempt, request_log_id=log_id)
                      for record, log_id in zip(records, log_ids) for attempt in record.attempts or ()])
    exchanges = [(record.exchange, log_id) for record, log_id in zip(records, log_ids) if record.exchange is not None]
    exchange_ids = _EXCHANGES.insert([_EXCHANGES.row(x, request_log_id=log_id) for x, log_id in exchanges], ids=True)
    _BODIES.insert([_BODIES.row(x.body, exchange_id=exchange_id)
                    for (x, _), exchange_id in zip(exchanges, exchange_ids) if x.body is not None])
    for observer in observers:
        observer(records)

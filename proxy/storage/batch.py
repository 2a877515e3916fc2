"""Writes a batch of records in one transaction: a few multi-row INSERTs, not an ORM flush per record.

A record is a storage.records.RequestRecord: a request-log row's columns plus its attempts, metric and
exchange (with its body), as the recorders build them; the database assigns the ids that link them."""
import dataclasses
import uuid
from operator import attrgetter

from sqlalchemy import Boolean, String, delete, insert, select
from sqlalchemy.exc import DisconnectionError, IntegrityError, InterfaceError, OperationalError, SQLAlchemyError

from models import Attempt, Exchange, ExchangeBody, Metric, RequestLog, db

from .inflight import WORKER_DIED

_CHUNK = 500  # request ids per IN (...) look-up, well under SQLite's limit on bound variables
_NOT_SEEN = object()
# A positional parameter, by DBAPI paramstyle (psycopg's pyformat takes %s too); the others take named ones.
_MARKS = {"qmark": "?", "format": "%s", "pyformat": "%s"}
# The database cannot take records now (locked, full, read-only, gone, unreachable): they wait.
UNAVAILABLE = (OperationalError, InterfaceError, DisconnectionError)
# The database will never take this record as it is: it is put aside, not retried forever.
_INVALID = (SQLAlchemyError, KeyError, TypeError, ValueError)


def _fields(kind):
    return {field.name for field in dataclasses.fields(kind)} if dataclasses.is_dataclass(kind) else set()


class _Table:
    """A table's insertable columns, with the defaults its model would have filled in; `link` is the
    column of the id that ties a row to its parent's, given at insert time."""

    def __init__(self, model, link=None):
        self.table, self.link = model.__table__, link
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
        self._layouts = {}  # record type: its _Layout
        self._statements = {}  # (dialect, columns): (INSERT text, bind processors)

    def _layout(self, kind):
        layout = self._layouts.get(kind)
        if layout is None:
            layout = self._layouts[kind] = _Layout(self, kind)
        return layout

    def insert(self, records, links=(), ids=False):
        """Insert a row for each of `records` (of one type; each linked to its parent's id in `links` when
        the table has a link); with ids=True return their new ids, in order."""
        if not records:
            return []
        layout = self._layout(type(records[0]))
        columns = layout.columns
        connection = db.session.connection()
        dialect = connection.dialect
        if ids and dialect.name != "sqlite" or dialect.paramstyle not in _MARKS:
            # Ids in parameter order come from SQLAlchemy's batched INSERT ... RETURNING (the DBAPI's
            # executemany hands none back).
            rows = [dict(zip(columns, row)) for row in layout.rows(records, links, ())]
            if dialect.insert_executemany_returning_sort_by_parameter_order:
                statement = insert(self.table).returning(self.table.c.id, sort_by_parameter_order=True)
                return list(db.session.execute(statement, rows).scalars())
            return [db.session.execute(insert(self.table), row).inserted_primary_key[0] for row in rows]
        # The DBAPI's executemany on SQLAlchemy's connection (its transaction, its error handling): one
        # statement compiled once, the column types' own conversions, none of execute()'s work per row.
        sql, processors = self._statement(dialect, columns)
        rows = layout.rows(records, links, processors)
        connection.exec_driver_sql(sql, rows)
        if not ids:
            return []
        # SQLite gives each new row one more than the table's largest rowid, and this transaction holds the
        # only write lock from its first INSERT on: one executemany's rows get consecutive ids ending at
        # last_insert_rowid().
        last = connection.exec_driver_sql("SELECT last_insert_rowid()").scalar_one()
        return list(range(last - len(rows) + 1, last + 1))

    def _statement(self, dialect, columns):
        """(the INSERT of `columns` in that order with positional parameters, the columns' bind processors)."""
        found = self._statements.get((dialect, columns))
        if found is None:
            mark = _MARKS[dialect.paramstyle]
            quote = dialect.identifier_preparer.quote
            sql = (f"INSERT INTO {dialect.identifier_preparer.format_table(self.table)} "
                   f"({', '.join(quote(self.table.c[key].name) for key in columns)}) "
                   f"VALUES ({', '.join([mark] * len(columns))})")
            processors = []
            for position, key in enumerate(columns):
                kind = self.table.c[key].type
                process = kind.dialect_impl(dialect).bind_processor(dialect)
                if process is not None:
                    # A flag's two values converted once: a call saved for each of them in every row.
                    known = (process(False), process(True)) if isinstance(kind, Boolean) else None
                    processors.append((position, process, known))
            found = self._statements[(dialect, columns)] = (sql, processors)
        return found


class _Layout:
    """How one record type fills a table's row: the columns it has, read at C speed, then those it lacks
    (None), then the link; which positions are cut to their column's length, and which take a default."""

    def __init__(self, table, kind):
        link = table.link
        names = tuple(key for key in table.defaults if key != link and (hasattr(kind, key) or key in _fields(kind)))
        lacking = tuple(key for key in table.defaults if key not in names and key != link)
        self.linked = link is not None
        self.columns = names + lacking + ((link,) if self.linked else ())
        self.getter = attrgetter(*names) if len(names) > 1 else (
            (lambda values, get=attrgetter(*names): (get(values),)) if names else (lambda values: ()))
        self.nones = (None,) * len(lacking)
        position = {column: index for index, column in enumerate(self.columns)}
        self.cut = [(position[key], length) for key, length in table.lengths.items() if key in position]
        self.filled = [(position[key], default, callable(default)) for key, default in table.defaults.items()
                       if default is not None and key in position]

    def rows(self, records, links, processors):
        """A tuple of values for each of `records`, with the database's conversions of their types."""
        getter, nones, cut, filled = self.getter, self.nones, self.cut, self.filled
        rows = []
        for record, link in zip(records, links) if self.linked else ((record, None) for record in records):
            # This runs for every row of every batch: no call per field, beyond a conversion's.
            row = [*getter(record), *nones, link] if self.linked else [*getter(record), *nones]
            for position, length in cut:  # before the defaults, which are never cut
                value = row[position]
                if value.__class__ is str or value is not None and isinstance(value, str):
                    row[position] = value[:length]  # the very string when it fits
            for position, default, call in filled:
                if row[position] is None:
                    row[position] = default() if call else default
            for position, process, known in processors:
                value = row[position]
                if value is None:
                    continue
                if known is not None and (value is True or value is False):
                    row[position] = known[value]
                else:
                    row[position] = process(value)
            rows.append(tuple(row))
        return rows


_METRICS, _LOGS = _Table(Metric), _Table(RequestLog, link="metric_id")
_ATTEMPTS, _EXCHANGES = _Table(Attempt, link="request_log_id"), _Table(Exchange, link="request_log_id")
_BODIES = _Table(ExchangeBody, link="exchange_id")


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
    count = duplicates = 0  # not `written`, the observers each transaction is handed
    for record in records:  # one by one, to find the record the database refuses
        try:
            done, already = _insert([record], True, written)
        except UNAVAILABLE:
            raise
        except _INVALID as exc:
            db.session.rollback()
            reject(record, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            continue
        count, duplicates = count + done, duplicates + already
    return count, duplicates


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
    metric_ids = dict(zip(map(id, measured), _METRICS.insert([r.metric for r in measured], ids=True)))
    log_ids = _LOGS.insert(records, [metric_ids.get(id(r)) for r in records], ids=True)
    attempts = [(attempt, log_id) for record, log_id in zip(records, log_ids) for attempt in record.attempts or ()]
    _ATTEMPTS.insert([attempt for attempt, _ in attempts], [log_id for _, log_id in attempts])
    exchanges = [(record.exchange, log_id) for record, log_id in zip(records, log_ids) if record.exchange is not None]
    exchange_ids = _EXCHANGES.insert([x for x, _ in exchanges], [log_id for _, log_id in exchanges], ids=True)
    bodies = [(x.body, exchange_id) for (x, _), exchange_id in zip(exchanges, exchange_ids) if x.body is not None]
    _BODIES.insert([body for body, _ in bodies], [exchange_id for _, exchange_id in bodies])
    for observer in observers:
        observer(records)

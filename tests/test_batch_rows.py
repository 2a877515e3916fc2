"""storage.batch writes with the DBAPI's executemany what SQLAlchemy's INSERT wrote: every column, its
defaults, strings cut to their column, the column types' conversions (datetimes, flags, bytes)."""
from datetime import datetime

from sqlalchemy import insert, select, text

from models import Attempt, Exchange, ExchangeBody, Metric, RequestLog, db
from proxy.storage.batch import insert_records
from proxy.storage.records import AttemptRow, ExchangeBodyRecord, ExchangeRecord, MetricRecord, RequestRecord

STARTED = datetime(2026, 12, 3, 17, 0, 0)  # no microseconds: SQLite's text keeps them as SQLAlchemy writes them


def _record(request_id, streamed=True):
    return RequestRecord(
        request_id=request_id, created_at=STARTED, route="/v1beta/models/{model}:generateContent", status_code=200,
        latency_ms=12.5, model_used="m" * 150, streamed=streamed, batch=None, prompt_tokens=3,
        attempts=[AttemptRow(1, STARTED, "m", "key-1", "ok", 200, latency_ms=4.0)],
        metric=MetricRecord(timestamp=STARTED, prompt_tokens=3, completion_tokens=4, total_tokens=7),
        exchange=ExchangeRecord(path="/v1beta/models/m:generateContent", key_source="server",
                                body=ExchangeBodyRecord(request_body=b"\x00req", response_body=None,
                                                        request_truncated=False, response_truncated=True)))


_LINKS = {"id", "request_id", "metric_id", "request_log_id", "exchange_id"}  # differ between the two records


def _rows(table, where):
    """Each row's values as SQLite holds them, with their types, without its ids and links."""
    return [{name: (value, type(value)) for name, value in row.items() if name not in _LINKS}
            for row in db.session.execute(text(f"SELECT * FROM {table} WHERE {where} ORDER BY id")).mappings()]


def test_rows_are_those_sqlalchemy_wrote(app):
    with app.app_context():
        assert insert_records([_record("batch-rows-1")], reject=lambda *_: None, tried=False) == (1, 0)
        log_id, metric_id = db.session.execute(select(RequestLog.id, RequestLog.metric_id)
                                               .where(RequestLog.request_id == "batch-rows-1")).one()
        # The same record, as the ORM-free SQLAlchemy INSERTs of before wrote it.
        metric = db.session.execute(insert(Metric.__table__).values(
            timestamp=STARTED, prompt_tokens=3, completion_tokens=4, total_tokens=7)).inserted_primary_key[0]
        values = {c.key: None for c in RequestLog.__table__.columns if not c.primary_key}
        values.update(request_id="batch-rows-2", created_at=STARTED, route="/v1beta/models/{model}:generateContent",
                      method="POST", status_code=200, latency_ms=12.5, model_used="m" * 100, streamed=True,
                      batch=False, prompt_tokens=3, attempt_count=0, metric_id=metric)
        log = db.session.execute(insert(RequestLog.__table__).values(**values)).inserted_primary_key[0]
        db.session.execute(insert(Attempt.__table__).values(
            request_log_id=log, number=1, started_at=STARTED, model="m", key_id="key-1", outcome="ok",
            status_code=200, latency_ms=4.0))
        exchange = db.session.execute(insert(Exchange.__table__).values(
            request_log_id=log, path="/v1beta/models/m:generateContent", key_source="server", request_bytes=0,
            response_bytes=0)).inserted_primary_key[0]
        db.session.execute(insert(ExchangeBody.__table__).values(
            exchange_id=exchange, request_body=b"\x00req", response_body=None, request_truncated=False,
            response_truncated=True))
        db.session.commit()

        ours = _rows("request_log", f"id = {log_id}")
        assert ours == _rows("request_log", f"id = {log}") and len(ours[0]) == len(RequestLog.__table__.columns) - 3
        assert ours[0]["model_used"][0] == "m" * 100 and ours[0]["attempt_count"][0] == 0
        for table in ("attempts", "exchanges"):
            assert _rows(table, f"request_log_id = {log_id}") == _rows(table, f"request_log_id = {log}")
        assert _rows("metrics", f"id = {metric_id}") == _rows("metrics", f"id = {metric}")
        assert _rows("exchange_bodies", f"exchange_id = (SELECT id FROM exchanges WHERE request_log_id = {log_id})") \
            == _rows("exchange_bodies", f"exchange_id = {exchange}")


def test_a_record_the_database_refuses_is_handed_back_and_the_others_written(app):
    refused = []
    with app.app_context():
        bad = _record("batch-rows-bad", streamed="yes")  # not a flag: the Boolean type refuses it
        written = insert_records([_record("batch-rows-ok"), bad], reject=lambda r, why: refused.append((r, why)))
        assert written == (1, 0)
        assert [r.request_id for r, _ in refused] == ["batch-rows-bad"] and "TypeError" in refused[0][1]

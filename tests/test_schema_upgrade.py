"""A new version started on an earlier version's database: its columns and indexes are added at start,
once however many workers start together, the rows already there are kept, and records are written."""
import sqlite3

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, inspect

from models import db
from proxy.storage.schema import SchemaError, upgrade
from tests import processes
from tests.conftest import generate_over_http, native_over_http, rows, wait_for

# The reports' covering index before the response cache added its column.
EARLIER_INDEX = ["created_at", "status_code", "latency_ms", "prompt_tokens", "completion_tokens", "total_tokens",
                 "model_used"]


def earlier_database(url):
    """The tables as a version before the response cache left them, with one request recorded: no
    cache_status or attempt_count column, the reports' index without cache_status, one index and the
    cache's table not made yet."""
    engine = create_engine(url)
    try:
        db.metadata.create_all(engine)
        with engine.begin() as connection:
            run = connection.exec_driver_sql
            run("DROP TABLE cache_entries")
            run("DROP INDEX ix_request_log_created_at")
            run("DROP INDEX ix_request_log_client_created")
            run("ALTER TABLE request_log DROP COLUMN cache_status")
            run("ALTER TABLE request_log DROP COLUMN attempt_count")
            run(f"CREATE INDEX ix_request_log_created_at ON request_log ({', '.join(EARLIER_INDEX)})")
            run("INSERT INTO request_log (request_id, created_at, route, method, status_code, latency_ms, streamed) "
                "VALUES ('earlier-request-1', '2026-11-01 10:00:00', '/gemini/generate', 'POST', 200, 12.5, false)")
    finally:
        engine.dispose()


def assert_upgraded(url):
    engine = create_engine(url)
    try:
        inspector = inspect(engine)
        columns = {column["name"] for column in inspector.get_columns("request_log")}
        assert {"cache_status", "attempt_count"} <= columns
        indexes = {index["name"]: index["column_names"] for index in inspector.get_indexes("request_log")}
        assert indexes["ix_request_log_created_at"] == EARLIER_INDEX + ["cache_status"]
        assert indexes["ix_request_log_client_created"] == ["client_id", "created_at"]
        assert inspector.has_table("cache_entries")
        with engine.begin() as connection:
            assert upgrade(connection, db.metadata) == []  # nothing is found missing a second time
    finally:
        engine.dispose()
    # The row already there is kept, and takes the model's default for a column it could not have had.
    assert rows(url, "SELECT attempt_count, cache_status FROM request_log WHERE request_id = 'earlier-request-1'") \
        == [(0, None)]


def send_both(server, count):
    for n in range(count):
        assert generate_over_http(server, f"g{n}", timeout=30).status_code == 200
        assert native_over_http(server, f"n{n}", timeout=30).status_code == 200


@pytest.mark.e2e
def test_workers_starting_together_on_an_earlier_database_upgrade_it_once(gunicorn, tmp_path):
    url = f"sqlite:///{tmp_path / 'proxy.db'}"
    earlier_database(url)
    server = gunicorn(DATABASE_URL=url, WEB_CONCURRENCY=3)
    send_both(server, 5)
    wait_for(lambda: rows(url, "SELECT count(*) FROM request_log") == [(11,)], message="10 new rows beside the old")
    assert_upgraded(url)
    output = server.output()
    # One worker upgraded it; the others, waiting for it, found nothing left to do.
    assert output.count("database upgraded for this version: added column request_log.cache_status") == 1
    assert output.count("database upgraded for this version: rebuilt index ix_request_log_created_at") == 1
    assert output.count("made index ix_request_log_client_created") == 1
    assert "Traceback" not in output and "refused records" not in output, output[-4000:]


@pytest.mark.e2e
def test_an_earlier_postgresql_database_is_upgraded(gunicorn, postgres, tmp_path):
    earlier_database(postgres.url)
    server = gunicorn(DATABASE_URL=postgres.url, WEB_CONCURRENCY=2, SPOOL_DIR=str(tmp_path / "spool"))
    send_both(server, 3)
    wait_for(lambda: rows(postgres.url, "SELECT count(*) FROM request_log") == [(7,)], message="6 new rows")
    assert_upgraded(postgres.url)
    output = server.output()
    assert output.count("added column request_log.cache_status") == 1
    assert "Traceback" not in output and "refused records" not in output, output[-4000:]


def test_an_earlier_database_is_upgraded_by_an_app_started_on_it(make_app, tmp_path):
    url = f"sqlite:///{tmp_path / 'proxy.db'}"
    earlier_database(url)
    make_app(SQLALCHEMY_DATABASE_URI=url)
    assert_upgraded(url)


def test_a_column_existing_rows_cannot_fill_stops_the_start_naming_it(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'other.db'}")
    earlier, now = MetaData(), MetaData()
    Table("things", earlier, Column("id", Integer, primary_key=True))
    Table("things", now, Column("id", Integer, primary_key=True), Column("label", String(20), nullable=False))
    earlier.create_all(engine)
    with engine.begin() as connection, pytest.raises(SchemaError, match="things lacks column label"):
        upgrade(connection, now)
    engine.dispose()


@pytest.mark.e2e
def test_gunicorn_refuses_a_database_whose_rows_cannot_take_this_versions_columns(tmp_path):
    # A table of that name some other program made: every record would be refused.
    path = tmp_path / "proxy.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE request_log (id INTEGER PRIMARY KEY, note TEXT)")
    process = processes.start_gunicorn(str(tmp_path), WEB_CONCURRENCY=1, DATABASE_URL=f"sqlite:///{path}")
    assert "gemini-proxy: database error: table request_log lacks column request_id" in processes.refusal_of(process)

"""A new version started on a database made before Alembic: it is brought to the baseline migration and
stamped, once however many workers start together; the rows already there are kept; records are written."""
import sqlite3

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine

from proxy.storage.database import create_tables
from proxy.storage import migrations
from proxy.storage.migrations import SchemaError, legacy, runner
from tests import processes
from tests.conftest import generate_over_http, native_over_http, rows, wait_for
from tests.schemas import before_alembic, run_sql, schema_of, version_of

# The reports' covering index before the response cache added its column.
EARLIER_INDEX = ["created_at", "status_code", "latency_ms", "prompt_tokens", "completion_tokens", "total_tokens",
                 "model_used"]

# A row in each kind of table, linked as the app links them, as the last version before Alembic left them.
TODAYS_ROWS = [
    "INSERT INTO api_clients (id, name, key_hash, key_prefix, source, created_at, env_key_hash, env_key_refused) "
    "VALUES (7, 'env-0123abcd', 'aa', 'gp-0123', 'env', '2026-11-01 09:00:00', 'bb', 'revoked')",
    "INSERT INTO metrics (id, timestamp, prompt_tokens, completion_tokens, total_tokens, temperature) "
    "VALUES (3, '2026-11-01 10:00:00', 5, 7, 12, 0.5)",
    "INSERT INTO request_log (id, request_id, created_at, route, method, client_id, status_code, latency_ms, "
    "attempt_count, streamed, cache_status, metric_id) VALUES (11, 'todays-request-1', '2026-11-01 10:00:00', "
    "'/gemini/generate', 'POST', 7, 200, 12.5, 1, false, 'MISS', 3)",
    "INSERT INTO attempts (request_log_id, number, started_at, model, outcome, latency_ms) "
    "VALUES (11, 1, '2026-11-01 10:00:00', 'gemini-2.5-flash', 'ok', 11.0)",
    "INSERT INTO exchanges (id, request_log_id, path, key_source, request_bytes, response_bytes) "
    "VALUES (4, 11, '/v1beta/models', 'server', 10, 20)",
    "INSERT INTO exchange_bodies (exchange_id, request_truncated, response_truncated) VALUES (4, false, true)",
    "INSERT INTO rolled_hours (hour, built_at) VALUES ('2026-11-01 10:00:00', '2026-11-01 11:00:00')",
]
TABLES_WITH_ROWS = ["api_clients", "metrics", "request_log", "attempts", "exchanges", "exchange_bodies", "rolled_hours"]


def table_rows(url):
    """The rows of the baseline's columns (later migrations add columns, with their defaults)."""
    from proxy.storage.migrations import baseline
    return {table: rows(url, f"SELECT {', '.join(baseline.metadata.tables[table].c.keys())} FROM {table} ORDER BY 1")
            for table in TABLES_WITH_ROWS}


def todays_database(url):
    """What the last version before Alembic made (its tables, no version table), with rows in it."""
    before_alembic(url)
    run_sql(url, TODAYS_ROWS)


def earlier_database(url):
    """The tables as a version before the response cache left them, with one request recorded: no
    cache_status or attempt_count column, the reports' index without cache_status, one index and the
    cache's table not made yet."""
    before_alembic(url)
    run_sql(url, [
        "DROP TABLE cache_entries",
        "DROP INDEX ix_request_log_created_at",
        "DROP INDEX ix_request_log_client_created",
        "ALTER TABLE request_log DROP COLUMN cache_status",
        "ALTER TABLE request_log DROP COLUMN attempt_count",
        f"CREATE INDEX ix_request_log_created_at ON request_log ({', '.join(EARLIER_INDEX)})",
        "INSERT INTO request_log (request_id, created_at, route, method, status_code, latency_ms, streamed) "
        "VALUES ('earlier-request-1', '2026-11-01 10:00:00', '/gemini/generate', 'POST', 200, 12.5, false)",
    ])


def made_fresh(tmp_path, make_app):
    """The schema a new database gets from the migrations."""
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    make_app(SQLALCHEMY_DATABASE_URI=url)
    return schema_of(url)


def assert_upgraded(url):
    assert version_of(url) == migrations.HEAD
    indexes = {name: list(columns) for name, columns, _ in schema_of(url)["request_log"]["indexes"]}
    assert indexes["ix_request_log_created_at"] == EARLIER_INDEX + ["cache_status"]
    assert indexes["ix_request_log_client_created"] == ["client_id", "created_at"]
    # The row already there is kept, and takes the model's default for a column it could not have had.
    assert rows(url, "SELECT attempt_count, cache_status FROM request_log WHERE request_id = 'earlier-request-1'") \
        == [(0, None)]


def send_both(server, count):
    for n in range(count):
        assert generate_over_http(server, f"g{n}", timeout=30).status_code == 200
        assert native_over_http(server, f"n{n}", timeout=30).status_code == 200


def test_a_database_made_by_the_last_version_before_alembic_is_stamped_and_keeps_its_rows(make_app, tmp_path):
    url = f"sqlite:///{tmp_path / 'proxy.db'}"
    todays_database(url)
    kept = table_rows(url)
    app = make_app(SQLALCHEMY_DATABASE_URI=url)
    assert version_of(url) == migrations.HEAD
    # Migration 0005 forgets the hours rolled up without the token kinds costs read: they are rolled up again.
    assert kept.pop("rolled_hours") and rows(url, "SELECT COUNT(*) FROM rolled_hours") == [(0,)]
    assert {table: found for table, found in table_rows(url).items() if table != "rolled_hours"} == kept
    # Nothing was added: the baseline is exactly what that version made.
    assert schema_of(url) == made_fresh(tmp_path, make_app)
    with app.app_context():
        assert create_tables() == []  # and a second start finds nothing to do


def test_an_earlier_database_is_upgraded_by_an_app_started_on_it(make_app, tmp_path):
    url = f"sqlite:///{tmp_path / 'proxy.db'}"
    earlier_database(url)
    app = make_app(SQLALCHEMY_DATABASE_URI=url)
    assert_upgraded(url)
    assert schema_of(url)["cache_entries"] == made_fresh(tmp_path, make_app)["cache_entries"]
    with app.app_context():
        assert create_tables() == []  # nothing is found missing a second time


def test_a_column_existing_rows_cannot_fill_stops_the_start_naming_it(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'other.db'}")
    earlier, now = MetaData(), MetaData()
    Table("things", earlier, Column("id", Integer, primary_key=True))
    Table("things", now, Column("id", Integer, primary_key=True), Column("label", String(20), nullable=False))
    earlier.create_all(engine)
    with engine.begin() as connection, pytest.raises(SchemaError, match="things lacks column label"):
        legacy.bring_to(connection, now)
    engine.dispose()


def test_a_database_that_cannot_be_upgraded_is_left_as_it_was(make_app, tmp_path):
    # A table of that name some other program made: the start stops, and nothing of this version's is left.
    path = tmp_path / "proxy.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE request_log (id INTEGER PRIMARY KEY, note TEXT)")
    connection.close()
    with pytest.raises(SchemaError, match="table request_log lacks column request_id"):
        make_app(SQLALCHEMY_DATABASE_URI=f"sqlite:///{path}")
    assert rows(f"sqlite:///{path}", "SELECT name FROM sqlite_master WHERE type = 'table'") == [("request_log",)]


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
    assert output.count("made table cache_entries") == 1
    assert output.count("stamped migration 0001 on a database made before migrations") == 1
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
    assert output.count("stamped migration 0001") == 1
    assert "Traceback" not in output and "refused records" not in output, output[-4000:]


@pytest.mark.e2e
def test_gunicorn_refuses_a_database_whose_rows_cannot_take_this_versions_columns(tmp_path):
    # A table of that name some other program made: every record would be refused.
    path = tmp_path / "proxy.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE request_log (id INTEGER PRIMARY KEY, note TEXT)")
    process = processes.start_gunicorn(str(tmp_path), WEB_CONCURRENCY=1, DATABASE_URL=f"sqlite:///{path}")
    assert "gemini-proxy: database error: table request_log lacks column request_id" in processes.refusal_of(process)

"""The migrations make exactly the models' tables (`flask db check` holds the two together), a start
migrates a database one process at a time, and a database this version does not know stops the start."""
import fcntl
import os
import subprocess
import threading

import pytest
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import String, create_engine, text

from models import db
from proxy.storage import migrations
from proxy.storage.database import create_tables
from proxy.storage.migrations import SchemaError, lock, runner
from tests import processes
from tests.conftest import rows, wait_for
from tests.schemas import as_before_migrations, run_sql, schema_of, version_of


def create_all_schema(url):
    """The schema SQLAlchemy's create_all makes from the models."""
    engine = create_engine(url)
    try:
        db.metadata.create_all(engine)
    finally:
        engine.dispose()
    return schema_of(url)


def check(app):
    """`flask db check`'s exit code: 0 when the models and the migrations agree, 1 when they differ. (What
    it prints goes to the sys.stdout Alembic was imported with, out of the runner's reach.)"""
    return app.test_cli_runner().invoke(args=["db", "check"]).exit_code


def test_head_names_the_newest_migration(app):
    with app.app_context():
        config = runner.extension(app).migrate.get_config()
    assert ScriptDirectory.from_config(config).get_current_head() == migrations.HEAD


@pytest.mark.e2e
def test_a_worker_starting_on_a_database_at_head_does_not_import_alembic(make_app, tmp_path):
    url = f"sqlite:///{tmp_path / 'proxy.db'}"
    make_app(SQLALCHEMY_DATABASE_URI=url)
    started = subprocess.run([processes.PYTHON, "-c", "import sys, wsgi; print(sorted({m.split('.')[0] for m in "
                              "sys.modules} & {'alembic', 'flask_migrate', 'mako'}))"], cwd=processes.ROOT, timeout=120,
                             env=processes.base_env(DATABASE_URL=url, GEMINI_API_KEY="key-for-the-test-0001",
                                                    PYTHONPATH=processes.ROOT), capture_output=True, text=True)
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == "[]"  # 0.4 s of imports every worker and CLI run would pay


def test_a_new_database_gets_exactly_create_alls_tables_from_the_migrations(make_app, tmp_path):
    url = f"sqlite:///{tmp_path / 'proxy.db'}"
    make_app(SQLALCHEMY_DATABASE_URI=url)
    assert version_of(url) == migrations.HEAD
    assert schema_of(url) == create_all_schema(f"sqlite:///{tmp_path / 'create_all.db'}")


def test_flask_db_check_finds_the_models_and_the_migrations_alike(app):
    assert check(app) == 0


def test_flask_db_check_fails_when_the_database_and_the_models_differ(app, caplog):
    with app.app_context(), db.engine.begin() as connection:
        connection.exec_driver_sql("DROP INDEX ix_request_log_route_created")
    assert check(app) == 1
    assert "New upgrade operations detected: [('add_index'" in caplog.text


def test_flask_db_downgrade_empties_the_database_and_upgrade_makes_it_again(app, tmp_path):
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    made = schema_of(url)
    cli = app.test_cli_runner()
    assert cli.invoke(args=["db", "downgrade", "base"]).exit_code == 0
    assert schema_of(url) == {"sqlite_master": []} and version_of(url) is None
    assert cli.invoke(args=["db", "upgrade"]).exit_code == 0
    assert schema_of(url) == made and version_of(url) == migrations.HEAD


def test_tables_dropped_from_a_migrated_database_are_made_again(app):
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    made = schema_of(url)
    with app.app_context():
        db.drop_all()  # as the fault tests do; the writer calls create_tables once the database refuses records
        assert create_tables() == [
            "made missing table(s) " + ", ".join(table.name for table in db.metadata.sorted_tables)]
    assert schema_of(url) == made


def test_a_database_at_a_migration_this_version_does_not_know_stops_the_start(make_app, tmp_path):
    url = f"sqlite:///{tmp_path / 'proxy.db'}"
    make_app(SQLALCHEMY_DATABASE_URI=url)
    run_sql(url, ["UPDATE alembic_version SET version_num = '9999'"])
    with pytest.raises(SchemaError, match="at migration 9999, which this version does not know"):
        make_app(SQLALCHEMY_DATABASE_URI=url)


def test_foreign_keys_are_on_again_after_a_migration(app):
    with app.app_context():
        assert db.session.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_a_migration_that_copies_a_table_keeps_the_rows_that_refer_to_it(app):
    # Alembic alters a SQLite table by copying it and dropping the old one: with the foreign keys on, the
    # drop would delete every attempt of every request (ON DELETE CASCADE).
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    run_sql(url, ["INSERT INTO request_log (id, request_id, created_at, route, method, status_code, latency_ms, "
                  "attempt_count, streamed) VALUES (1, 'r1', '2026-11-01', '/x', 'POST', 200, 1.0, 1, false)",
                  "INSERT INTO attempts (request_log_id, number, started_at, model, outcome, latency_ms) "
                  "VALUES (1, 1, '2026-11-01', 'm', 'ok', 1.0)"])
    with app.app_context(), lock.locked_connection(db.engine) as connection:
        operations = Operations(MigrationContext.configure(connection))
        with operations.batch_alter_table("request_log", recreate="always") as batch:
            batch.alter_column("finish_reason", type_=String(60))
    assert rows(url, "SELECT count(*) FROM attempts") == [(1,)]


def blocked_on(path):
    """True while some process waits for an flock on `path` (Linux's /proc/locks marks waiters "->")."""
    inode = f":{os.stat(path).st_ino} "
    with open("/proc/locks") as locks:
        return any("->" in line and "FLOCK" in line and inode in line for line in locks)


def migrate_in_thread(app):
    done = []

    def start():
        with app.app_context():
            done.append(create_tables())

    thread = threading.Thread(target=start)
    thread.start()
    return thread, done


def test_a_start_waits_for_the_process_migrating_the_sqlite_file(app):
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    as_before_migrations(url)  # this start has work to do
    lock_path = url.split("///", 1)[1] + ".schema.lock"
    with open(lock_path, "a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)  # another process is migrating
        thread, done = migrate_in_thread(app)
        wait_for(lambda: blocked_on(lock_path), timeout=10, message="the start to wait for the lock")
        assert version_of(url) is None and done == []
    thread.join(10)
    assert done == [["stamped migration 0001 on a database made before migrations",
                     f"migrated from 0001 to {migrations.HEAD}"]]
    assert version_of(url) == migrations.HEAD


@pytest.mark.e2e
def test_on_postgresql_the_migrations_make_create_alls_tables_and_db_check_passes(make_app, postgres, tmp_path):
    created = create_all_schema(postgres.url)
    engine = create_engine(postgres.url)
    db.metadata.drop_all(engine)
    engine.dispose()
    app = make_app(SQLALCHEMY_DATABASE_URI=postgres.url, SPOOL_DIR=str(tmp_path / "spool"))
    assert version_of(postgres.url) == migrations.HEAD
    assert schema_of(postgres.url) == created
    assert check(app) == 0


@pytest.mark.e2e
def test_on_postgresql_a_start_waits_for_the_advisory_lock(make_app, postgres, tmp_path):
    app = make_app(SQLALCHEMY_DATABASE_URI=postgres.url, SPOOL_DIR=str(tmp_path / "spool"))
    as_before_migrations(postgres.url)
    engine = create_engine(postgres.url)
    try:
        with engine.connect() as holder:
            holder.execute(text("SELECT pg_advisory_lock(:key)"), {"key": lock.ADVISORY_LOCK})
            thread, done = migrate_in_thread(app)
            wait_for(lambda: holder.execute(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                                 "AND NOT granted")).scalar() == 1,
                     timeout=10, message="the start to wait for the lock")
            assert version_of(postgres.url) is None and done == []
            holder.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": lock.ADVISORY_LOCK})
            holder.commit()
        thread.join(10)
    finally:
        engine.dispose()
    assert done == [["stamped migration 0001 on a database made before migrations",
                     f"migrated from 0001 to {migrations.HEAD}"]]
    assert version_of(postgres.url) == migrations.HEAD


@pytest.mark.e2e
def test_flask_db_upgrade_and_check_run_as_the_readme_says(tmp_path):
    url = f"sqlite:///{tmp_path / 'proxy.db'}"
    env = processes.base_env(DATABASE_URL=url, GEMINI_API_KEY="key-for-the-cli-0001", PYTHONPATH=processes.ROOT)

    def flask_db(*args):
        return subprocess.run([processes.PYTHON, "-m", "flask", "--app", "wsgi", "db", *args], env=env,
                              cwd=processes.ROOT, capture_output=True, text=True, timeout=120)

    upgraded = flask_db("upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert version_of(url) == migrations.HEAD
    assert schema_of(url) == create_all_schema(f"sqlite:///{tmp_path / 'create_all.db'}")
    checked = flask_db("check")
    assert checked.returncode == 0 and "No new upgrade operations detected" in checked.stdout + checked.stderr

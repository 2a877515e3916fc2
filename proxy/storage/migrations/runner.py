"""The database brought to this version's newest migration at start, one process at a time; Flask-Migrate
bound to the app.

Workers start together, so the work is done under a lock (PostgreSQL's advisory lock, or a file
beside SQLite's) and in one transaction: the first process migrates, the others then find it done.
The common case, a database already at the newest migration, is seen before this module is imported
(migrations.up_to_date)."""
import fcntl
import logging
import threading
from contextlib import contextmanager

from alembic import command
from alembic.script import ScriptDirectory
from flask_migrate import Migrate
from sqlalchemy import inspect, text

from models import db

from . import DIRECTORY, SchemaError, baseline, legacy, up_to_date, version_of

log = logging.getLogger(__name__)

BASELINE = "0001"  # the revision of baseline.py's tables
_ADVISORY_LOCK = 0x67656D696E69  # any constant: PostgreSQL advisory lock id held while migrating
# Alembic keeps the environment of the run under way in module globals: one run at a time per process.
_one_run = threading.Lock()


def extension(app):
    """Flask-Migrate's state on `app`, bound the first time it is needed."""
    if "migrate" not in app.extensions:
        Migrate(app, db, directory=DIRECTORY)
    return app.extensions["migrate"]


def commands(app):
    """Flask-Migrate's `flask db` group, for `app`."""
    extension(app)
    return app.cli.commands["db"]


def upgrade(app, engine, metadata):
    """Bring the database to the newest migration; then make any of `metadata`'s (the models') tables
    it still lacks (dropped by hand: the models are the newest migration's tables, `flask db check`
    holds them so). Returns what was done, for the log."""
    config = extension(app).migrate.get_config()
    head = ScriptDirectory.from_config(config).get_current_head()
    with locked_connection(engine) as connection:
        config.attributes["connection"] = connection  # env.py runs on it, inside the lock
        if up_to_date(connection, metadata, head):
            return []  # another process did it while this one waited
        done = _migrate(connection, config, head, metadata)
    for line in done:
        log.warning("database upgraded for this version: %s", line)
    return done


def _migrate(connection, config, head, metadata):
    tables = set(inspect(connection).get_table_names())
    version = version_of(connection, tables)
    if not tables:  # a new database: the migrations make it, and that needs no warning
        command.upgrade(config, "head")
        log.info("database made at migration %s", head)
        return []
    done = []
    if version is None and tables & set(baseline.metadata.tables):
        # Made before migrations: brought to the baseline by adding what it lacks, then marked as there.
        done = legacy.bring_to(connection, baseline.metadata)
        command.stamp(config, BASELINE)
        done.append(f"stamped migration {BASELINE} on a database made before migrations")
        version = BASELINE
    elif version is not None and not _known(config, version):
        raise SchemaError(f"the database is at migration {version}, which this version does not know (a newer "
                          "version's?); see README, The database's schema, and upgrading")
    if version != head:
        command.upgrade(config, "head")
        done.append(f"migrated from {version or 'no migration'} to {head}")
    inspector = inspect(connection)
    missing = [table for table in metadata.sorted_tables if not inspector.has_table(table.name)]
    if missing:
        metadata.create_all(connection, tables=missing)
        done.append(f"made missing table(s) {', '.join(table.name for table in missing)}")
    return done


def _known(config, version):
    return any(script.revision == version for script in ScriptDirectory.from_config(config).walk_revisions())


@contextmanager
def locked_connection(engine):
    """A connection in a transaction that one process at a time holds, committed at the end."""
    with _one_run:
        if engine.dialect.name == "sqlite":
            with _file_lock(engine.url.database), engine.connect() as connection, _sqlite_transaction(connection):
                yield connection
            return
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                # Concurrent CREATE TABLEs collide in PostgreSQL's catalog; the lock ends with the transaction.
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK})
            yield connection


@contextmanager
def _sqlite_transaction(connection):
    """Python's sqlite3 commits DDL as it goes; an explicit BEGIN makes a migration all or nothing. The
    foreign keys are off meanwhile (that is only possible outside a transaction): Alembic alters a
    SQLite table by copying it and dropping the old one, and a drop with them on would delete, or
    empty the references of, every row that refers to it."""
    connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    try:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        yield
        connection.commit()
    except BaseException:
        connection.rollback()
        raise
    finally:
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")


@contextmanager
def _file_lock(path):
    """Held beside the SQLite file while migrating: workers wait for it however long a migration
    takes, where SQLite's own lock would give up after the busy timeout."""
    try:
        handle = open(f"{path}.schema.lock", "a") if path and path != ":memory:" else None
    except OSError:  # a read-only folder: nothing can be made or upgraded there anyway
        handle = None
    if handle is None:
        yield
        return
    with handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield

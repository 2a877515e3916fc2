"""The migration lock: one process at a time migrates a database, in one transaction.

PostgreSQL's advisory lock, held by the transaction; for SQLite, a file beside the database, and the
database's own write lock from the first statement. Workers start together, so the first migrates
and the others, once they have the lock, find it done."""
import fcntl
import threading
from contextlib import contextmanager

from sqlalchemy import text

ADVISORY_LOCK = 0x67656D696E69  # any constant: PostgreSQL advisory lock id held while migrating
# Alembic keeps the environment of the run under way in module globals: one run at a time per process.
_one_run = threading.Lock()


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
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK})
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

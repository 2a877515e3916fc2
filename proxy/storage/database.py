"""Database set-up: SQLite tuned for several writer processes, and the schema migrated at start (tables
created on the first run, upgraded on the first run of a new version: see migrations/)."""
import logging
import os
import sqlite3

from flask import current_app
from sqlalchemy import event, text
from sqlalchemy.exc import DisconnectionError, SQLAlchemyError

from models import db

from . import migrations
from .sqlite_turns import PROGRESS_STEPS, let_requests_in, serving_on_gevent, take_write_lock_politely

log = logging.getLogger(__name__)


def default_sqlite_url(instance_path):
    os.makedirs(instance_path, exist_ok=True)
    return "sqlite:///" + os.path.join(instance_path, "proxy.db")


def local_path(app, name):
    """Where a worker keeps local state: "<file>.<name>" beside a SQLite file, else in the instance folder."""
    path = _file_of(app.config["SQLALCHEMY_DATABASE_URI"])
    return f"{path}.{name}" if path else os.path.join(app.instance_path, name)


def engine_options(url, busy_timeout):
    if not url.startswith("sqlite"):
        return {"pool_pre_ping": True}
    # How long a writer waits for the lock: for write transactions, sqlite_turns tries for it between
    # other requests; for the rest (tables made, checkpoints), SQLite's own busy handler waits.
    return {"connect_args": {"timeout": busy_timeout}, "pool_size": 10, "max_overflow": 20}


def _tune_sqlite(dbapi_connection, _record, busy_timeout_ms):
    if serving_on_gevent():
        dbapi_connection.set_progress_handler(let_requests_in(dbapi_connection), PROGRESS_STEPS)
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the one writer; NORMAL sync is durable across app crashes
    # in WAL mode and much cheaper than FULL; busy_timeout makes writers queue, not fail.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _read_only_is_a_disconnect(context):
    """A handle_error hook. SQLite opens a file it may not write read-only, and the connection stays
    so after the disk is writable again (or reports SQLITE_READONLY_DBMOVED for a file deleted under
    it): treating the error as a disconnect makes the pool open new connections for the next try."""
    error = context.original_exception
    if isinstance(error, sqlite3.Error) and (getattr(error, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_READONLY:
        context.is_disconnect = True


def _file_of(url):
    path = url.split("///", 1)[1].split("?", 1)[0] if url.startswith("sqlite") and "///" in url else ""
    return None if not path or path == ":memory:" else path


def _inode(path):
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


def _watch_file(engine, path):
    """A connection keeps writing into a database file that was deleted or replaced, and those
    writes are lost: check the file on every checkout and open a new connection when it changed."""
    @event.listens_for(engine, "connect")
    def remember(_connection, record):
        record.info["inode"] = _inode(path)

    @event.listens_for(engine, "checkout")
    def check(_connection, record, _proxy):
        if _inode(path) != record.info.get("inode"):
            raise DisconnectionError("the database file was deleted or replaced")


def init_database(app):
    url = app.config.get("SQLALCHEMY_DATABASE_URI") or default_sqlite_url(app.instance_path)
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    busy = app.config["SQLITE_BUSY_TIMEOUT_SECONDS"]
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", engine_options(url, busy))
    db.init_app(app)
    app.cli.add_command(migrations.db_commands)  # `flask db ...`
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            event.listen(db.engine, "connect", lambda conn, rec: _tune_sqlite(conn, rec, busy * 1000))
            event.listen(db.engine, "before_cursor_execute", take_write_lock_politely(busy))
            event.listen(db.engine, "handle_error", _read_only_is_a_disconnect)
            if _file_of(url):
                _watch_file(db.engine, _file_of(url))
        try:
            create_tables()
            if db.engine.dialect.name == "sqlite":
                refresh_statistics()
        except SQLAlchemyError:
            # Start anyway: /health reports the database, and a later issue's spool keeps records.
            log.exception("could not create the database tables at start-up")


def create_tables():
    """Bring the database to this version's newest migration, making it if it is empty (migrations/:
    one process at a time; the others then find nothing left to do)."""
    return migrations.upgrade(current_app._get_current_object(), db.engine, db.metadata)


def refresh_statistics():
    """Give SQLite's planner statistics: without them it picks the wrong index for windowed reports
    (seen: 770 ms instead of 100 ms over 1M rows). analysis_limit keeps ANALYZE to milliseconds."""
    with db.engine.begin() as connection:
        connection.exec_driver_sql("PRAGMA analysis_limit=1000")
        analysed = connection.exec_driver_sql(
            "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").first() is not None
        connection.exec_driver_sql("PRAGMA optimize" if analysed else "ANALYZE")


def db_reachable():
    try:
        db.session.execute(text("SELECT 1"))
        return True
    except SQLAlchemyError:
        log.warning("database unreachable", exc_info=True)
        db.session.rollback()
        return False


def release_connection():
    """before_request, last: give the connection back before the upstream call.

    Auth and quota lookups check a connection out of the pool; held across a generation of
    many seconds, the pool's size would cap how many requests a worker holds in flight.
    Objects already loaded (g.client) stay readable after close(). Most requests never open a session
    (client keys come from the key cache): asking the registry first saves making one only to close it.
    """
    if db.session.registry.has():
        db.session.close()

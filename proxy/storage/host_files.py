"""The small SQLite files a host's workers share (the token-quota ledger, rate limits, open Live sessions):
opened the same way by each, in WAL mode, with no sync per commit (what they hold is counts, and a gevent
worker stands still while SQLite syncs)."""
import sqlite3
import time

BUSY_TIMEOUT = 5.0  # seconds; each transaction on these files is a handful of indexed statements
_WAL_PAUSE = 0.01  # seconds between tries to switch a new file to WAL


def use_wal(connection, deadline=BUSY_TIMEOUT, pause=_WAL_PAUSE):
    """Put the file in WAL mode. Two workers opening a new file at once race for it, and SQLite answers
    the loser "database is locked" at once, without waiting for its busy timeout: so wait here."""
    waited = 0.0
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError:
            if waited >= deadline:
                raise
            time.sleep(pause)
            waited += pause


def open_shared(path, schema):
    """A connection to the host file at `path`, its tables made."""
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
    use_wal(connection)
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.executescript(schema)
    return connection

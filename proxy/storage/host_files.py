"""The small SQLite files a host's workers share (the token-quota ledger, rate limits, open Live sessions):
opened the same way by each, in WAL mode, with no sync per commit (what they hold is counts, and a gevent
worker stands still while SQLite syncs)."""
import os
import sqlite3
import threading
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


class SharedFile:
    """One process's connection to a host file (made again after a fork), and its short transactions."""

    def __init__(self, path, schema, make_folder=False):
        self.path, self.schema, self.make_folder = path, schema, make_folder
        self._lock = threading.Lock()  # one connection per process; a transaction is not shared
        self._connection, self._pid = None, None

    def _connect(self):
        if self._connection is None or self._pid != os.getpid():  # never a connection from before a fork
            folder = os.path.dirname(self.path)
            if self.make_folder and folder:
                os.makedirs(folder, exist_ok=True)
            self._connection, self._pid = open_shared(self.path, self.schema), os.getpid()
        return self._connection

    def transaction(self, work):
        """work(connection) inside BEGIN IMMEDIATE ... COMMIT (rolled back if it raises)."""
        with self._lock:
            connection = self._connect()
            connection.execute("BEGIN IMMEDIATE")
            try:
                result = work(connection)
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
            return result

    def read(self, work):
        """work(connection) outside a transaction (one statement reads a consistent file)."""
        with self._lock:
            return work(self._connect())

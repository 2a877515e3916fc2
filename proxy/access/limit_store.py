"""A `limits` storage in a SQLite file, so rate limits hold across every worker of one host without Redis.

Flask-Limiter finds it by its scheme: RATE_LIMIT_STORAGE_URL=sqlite:///<path> (four slashes for an
absolute path, as SQLAlchemy has it). Each hit is one short BEGIN IMMEDIATE transaction in WAL mode,
so two workers never both take the last place in a window; its rows leave once their window has."""
import sqlite3
import time

from limits.storage import MovingWindowSupport, Storage

from ..storage.host_files import SharedFile

SCHEME = "sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS limit_hits (
    key TEXT NOT NULL, at REAL NOT NULL, amount INTEGER NOT NULL, expires REAL NOT NULL);
CREATE INDEX IF NOT EXISTS limit_hits_key ON limit_hits (key, at);
CREATE INDEX IF NOT EXISTS limit_hits_expires ON limit_hits (expires);
CREATE TABLE IF NOT EXISTS limit_counters (
    key TEXT PRIMARY KEY, value INTEGER NOT NULL, expires REAL NOT NULL);
"""
_PRUNE_EVERY = 60.0  # seconds between sweeps of the rows of keys nobody hits any more


def path_of(uri):
    """The file of a sqlite:///<path> URI: sqlite:///relative/file, sqlite:////absolute/file."""
    prefix = f"{SCHEME}:///"
    if not uri.startswith(prefix) or len(uri) == len(prefix):
        raise ValueError(f"{uri!r} is not a {prefix}<path> URI")
    return uri[len(prefix):]


class HostFileStorage(Storage, MovingWindowSupport):
    """Moving-window entries (and fixed-window counters) of rate limits, shared through one SQLite file."""

    STORAGE_SCHEME = [SCHEME]

    def __init__(self, uri=None, wrap_exceptions=False, clock=time.time, **options):
        self.path, self.clock = path_of(uri), clock
        self._file = SharedFile(self.path, _SCHEMA, make_folder=True)
        self._pruned_at = float("-inf")
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    @property
    def base_exceptions(self):
        return sqlite3.Error

    def _transaction(self, work):
        return self._file.transaction(lambda connection: work(connection, self.clock()))

    def _read(self, work):
        return self._file.read(lambda connection: work(connection, self.clock()))

    def _prune(self, connection, now):
        if now - self._pruned_at >= _PRUNE_EVERY:
            self._pruned_at = now
            connection.execute("DELETE FROM limit_hits WHERE expires <= ?", (now,))
            connection.execute("DELETE FROM limit_counters WHERE expires <= ?", (now,))

    # The moving window: what strategy="moving-window" calls.

    def acquire_entry(self, key, limit, expiry, amount=1):
        if amount > limit:
            return False

        def work(connection, now):
            # This key's rows past its window go first: the count below reads only the window.
            connection.execute("DELETE FROM limit_hits WHERE key = ? AND at <= ?", (key, now - expiry))
            self._prune(connection, now)
            (taken,) = connection.execute("SELECT coalesce(sum(amount), 0) FROM limit_hits WHERE key = ?",
                                          (key,)).fetchone()
            if taken + amount > limit:
                return False
            connection.execute("INSERT INTO limit_hits (key, at, amount, expires) VALUES (?, ?, ?, ?)",
                               (key, now, amount, now + expiry))
            return True

        return self._transaction(work)

    def get_moving_window(self, key, limit, expiry):
        """(when the oldest entry in the window was taken, entries in the window); (now, 0) when empty."""

        def work(connection, now):
            oldest, taken = connection.execute(
                "SELECT min(at), coalesce(sum(amount), 0) FROM limit_hits WHERE key = ? AND at > ?",
                (key, now - expiry)).fetchone()
            return (oldest if oldest is not None else now), taken

        return self._read(work)

    # Fixed-window counters: the other strategies' calls, so any RATELIMIT_STRATEGY works here.

    def incr(self, key, expiry, amount=1):
        def work(connection, now):
            connection.execute("DELETE FROM limit_counters WHERE key = ? AND expires <= ?", (key, now))
            connection.execute(
                "INSERT INTO limit_counters (key, value, expires) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = value + excluded.value", (key, amount, now + expiry))
            return connection.execute("SELECT value FROM limit_counters WHERE key = ?", (key,)).fetchone()[0]

        return self._transaction(work)

    def get(self, key):
        def work(connection, now):
            row = connection.execute("SELECT value FROM limit_counters WHERE key = ? AND expires > ?",
                                     (key, now)).fetchone()
            return row[0] if row else 0

        return self._read(work)

    def get_expiry(self, key):
        def work(connection, now):
            row = connection.execute("SELECT expires FROM limit_counters WHERE key = ? AND expires > ?",
                                     (key, now)).fetchone()
            return row[0] if row else now

        return self._read(work)

    def clear(self, key):
        def work(connection, _now):
            connection.execute("DELETE FROM limit_hits WHERE key = ?", (key,))
            connection.execute("DELETE FROM limit_counters WHERE key = ?", (key,))

        self._transaction(work)

    def reset(self):
        def work(connection, _now):
            hits = connection.execute("DELETE FROM limit_hits").rowcount
            return hits + connection.execute("DELETE FROM limit_counters").rowcount

        return self._transaction(work)

    def check(self):
        try:
            self._read(lambda connection, _now: connection.execute("SELECT 1").fetchone())
        except sqlite3.Error:
            return False
        return True

"""The token-quota ledger every worker of one instance shares: a small SQLite file of its own.

It is not the main database on purpose: the quota must hold while that one is locked or down,
and its write lock is held for microseconds here, never behind a batch of records."""
import time
from typing import NamedTuple, Optional

from ..storage.host_files import SharedFile

_SCHEMA = """
CREATE TABLE IF NOT EXISTS quota_usage (
    client_id INTEGER NOT NULL, day TEXT NOT NULL, used INTEGER NOT NULL,
    PRIMARY KEY (client_id, day));
CREATE TABLE IF NOT EXISTS quota_holds (
    id INTEGER PRIMARY KEY, client_id INTEGER NOT NULL, day TEXT NOT NULL,
    tokens INTEGER NOT NULL, expires REAL NOT NULL);
CREATE INDEX IF NOT EXISTS quota_holds_client ON quota_holds (client_id, day);
CREATE INDEX IF NOT EXISTS quota_holds_expires ON quota_holds (expires);
"""
_KEEP_DAYS = 2  # usage rows kept, so a request that began before midnight settles on its own day


class Reservation(NamedTuple):
    """The answer to a reserve: refused when nothing was left; `hold` names the tokens set aside."""

    granted: bool
    hold: Optional[str]
    tokens: int  # held for this request
    used: int  # settled today before it
    held: int  # held by other requests in flight


def decide(quota, used, held, estimate):
    """Tokens to hold for a request: its estimate, capped by what is left, so a request is refused only
    when nothing is left at all. The last one admitted may overrun: by at most its own tokens. A call
    that holds nothing (no output: a model list, a token count) is refused only once the quota is spent."""
    if estimate <= 0:
        return 0 if used < quota else None
    left = quota - used - held
    return max(0, min(estimate, left)) if left > 0 else None


class LocalLedger:
    """Per-client, per-day usage and the holds of requests in flight, shared through one SQLite file."""

    def __init__(self, path, clock=time.time):
        self.path, self.clock = path, clock
        self._file = SharedFile(path, _SCHEMA)

    def _transaction(self, work):
        return self._file.transaction(work)

    def reserve(self, client_id, day, estimate, quota, hold_seconds):
        now = self.clock()

        def work(connection):
            # Holds of requests that died are dropped here, once they are past their time.
            connection.execute("DELETE FROM quota_holds WHERE expires <= ?", (now,))
            used = _used(connection, client_id, day)
            (held,) = connection.execute("SELECT coalesce(sum(tokens), 0) FROM quota_holds "
                                         "WHERE client_id = ? AND day = ?", (client_id, day)).fetchone()
            tokens = decide(quota, used, held, estimate)
            if tokens is None:
                return Reservation(False, None, 0, used, held)
            if not tokens:
                return Reservation(True, None, 0, used, held)
            cursor = connection.execute("INSERT INTO quota_holds (client_id, day, tokens, expires) "
                                        "VALUES (?, ?, ?, ?)", (client_id, day, tokens, now + hold_seconds))
            return Reservation(True, str(cursor.lastrowid), tokens, used, held)

        return self._transaction(work)

    def settle(self, client_id, day, hold, tokens):
        """Replace a hold (if any, and if not already expired) by the tokens the request really used."""

        def work(connection):
            if hold is not None:
                connection.execute("DELETE FROM quota_holds WHERE id = ?", (int(hold),))
            if tokens:
                connection.execute(
                    "INSERT INTO quota_usage (client_id, day, used) VALUES (?, ?, ?) "
                    "ON CONFLICT (client_id, day) DO UPDATE SET used = used + excluded.used",
                    (client_id, day, tokens))

        self._transaction(work)

    def floor(self, client_id, day, recorded):
        """Usage is at least what the database recorded (this ledger may be new, or other instances
        may share the database); never less than this ledger has counted itself."""

        def work(connection):
            connection.execute(
                "INSERT INTO quota_usage (client_id, day, used) VALUES (?, ?, ?) "
                "ON CONFLICT (client_id, day) DO UPDATE SET used = max(used, excluded.used)",
                (client_id, day, recorded))
            connection.execute("DELETE FROM quota_usage WHERE day < date(?, ?)", (day, f"-{_KEEP_DAYS} days"))

        self._transaction(work)

    def usage(self, client_id, day):
        """(settled tokens, tokens held by requests in flight) now."""
        now = self.clock()

        def work(connection):
            (held,) = connection.execute("SELECT coalesce(sum(tokens), 0) FROM quota_holds WHERE client_id = ? "
                                         "AND day = ? AND expires > ?", (client_id, day, now)).fetchone()
            return _used(connection, client_id, day), held

        return self._transaction(work)


def _used(connection, client_id, day):
    row = connection.execute("SELECT used FROM quota_usage WHERE client_id = ? AND day = ?",
                             (client_id, day)).fetchone()
    return row[0] if row else 0
